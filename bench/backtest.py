"""Benchmark: a 60-session x 200-stock backtest against the simulator, cold and warm.

    python bench/backtest.py [--sessions 60] [--stocks 200] [--end 2025-10-31] [--keep-cache DIR]

Each phase runs in its own fresh Python process on one cache folder (a new,
empty temporary folder unless ``--keep-cache`` is given):

1. **cold**  — empty cache: every bar comes from the simulator;
2. **warm**  — a new process on the now-filled cache (what a notebook restart
   or a second ``finder demo`` sees);
3. **warm, same process** — the warm backtest run a second time in phase 2's
   process.

For each it prints the wall time, the upstream requests per api-id (counted
by finder's client, i.e. what reached the simulator), the daily-chart
requests per stock, and the ratio to the cold run.  No assertions: this is a
measurement (the issue's goals: <= ~3 ka10081 requests per stock cold, 0 warm).
Without credentials the in-process simulator serves the data.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def _phase(args: argparse.Namespace) -> None:
    """Run inside a child process: the backtest(s), then one JSON line on stdout."""
    import logging

    logging.disable(logging.WARNING)  # keep stdout for the JSON line
    import finder
    from finder import calendar
    from finder.analysis.backtest import backtest

    sessions = calendar.sessions_in_range("2015-01-01", args.end)[-args.sessions:]
    t0 = time.perf_counter()
    stocks = finder.get_stock_list(["KOSPI", "KOSDAQ"])
    codes = sorted(stocks["code"].astype(str))[: args.stocks]
    list_s = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeat):
        before = dict(finder.cache.info()["requests"])
        t0 = time.perf_counter()
        res = backtest("momentum", sessions[0], sessions[-1], universe=codes, horizons=(1, 5, 10, 20),
                       progress=False)
        elapsed = time.perf_counter() - t0
        after = finder.cache.info()["requests"]
        runs.append({"seconds": elapsed,
                     "requests": {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)},
                     "picks": len(res.picks), "trades": int(res.trades["return"].notna().sum())})
    print(json.dumps({"stocks": len(codes), "sessions": len(sessions), "first": str(sessions[0].date()),
                      "last": str(sessions[-1].date()), "list_s": list_s, "runs": runs}))


def _run_child(cache: str, args: argparse.Namespace, repeat: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}  # the simulator, always
    env["FINDER_CACHE_DIR"] = cache
    cmd = [sys.executable, __file__, "--phase", "--sessions", str(args.sessions), "--stocks", str(args.stocks),
           "--end", args.end, "--repeat", str(repeat)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=60)
    p.add_argument("--stocks", type=int, default=200)
    p.add_argument("--end", default="2025-10-31")
    p.add_argument("--keep-cache", default=None, help="use (and keep) this cache folder instead of a temporary one")
    p.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase:
        _phase(args)
        return

    tmp = None
    cache = args.keep_cache
    if cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="finder-bench-")
        cache = tmp.name
    try:
        cold = _run_child(cache, args, 1)
        warm = _run_child(cache, args, 2)
    finally:
        if tmp is not None:
            tmp.cleanup()

    rows = [("cold", cold["runs"][0]), ("warm (new process)", warm["runs"][0]),
            ("warm (same process)", warm["runs"][1])]
    base = rows[0][1]["seconds"]
    print(f"backtest benchmark: momentum, {cold['sessions']} sessions ({cold['first']} .. {cold['last']}) x "
          f"{cold['stocks']} stocks, horizons 1/5/10/20, simulator")
    print(f"{'phase':<22}{'seconds':>9}{'x cold':>8}{'ka10081':>9}{'/stock':>8}  all requests")
    for name, r in rows:
        daily = r["requests"].get("ka10081", 0)
        print(f"{name:<22}{r['seconds']:>9.2f}{r['seconds'] / base:>8.3f}{daily:>9}{daily / cold['stocks']:>8.2f}  "
              f"{r['requests'] or 0}")
    print(f"picks {cold['runs'][0]['picks']}, completed trades {cold['runs'][0]['trades']} "
          f"(identical warm: {cold['runs'][0]['picks'] == warm['runs'][0]['picks'] == warm['runs'][1]['picks']}); "
          f"stock list {cold['list_s']:.2f} s cold, {warm['list_s']:.2f} s warm")


if __name__ == "__main__":
    main()
