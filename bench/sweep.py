"""Benchmark: a warm momentum sweep over the synthetic market, locally and on a Dask LocalCluster.

    python bench/sweep.py [--stocks 2500] [--sessions 250] [--configs 1000] [--end 2025-10-31]
                          [--workers 1,2] [--dask-configs N] [--keep-cache DIR]

Phases, each in its own fresh Python process on one cache folder (a new temporary
folder unless ``--keep-cache``), against an in-process simulator of a
``SyntheticMarket(n_stocks=...)`` (the simulator's default market has only ~300):

1. **fill**: one small cold sweep fills the cache (not timed for the goal);
2. **warm**: the timed sweep of ``--configs`` configurations in a fresh process:
   wall time vs the issue's 60 s goal, configurations per second, peak memory
   (max RSS), the upstream requests (goal 0), then the same sweep on a
   ``distributed.LocalCluster`` with 1 and 2 worker processes (``--dask-configs``
   configurations; the driver's scan and the scatter are included in the time).

The grid: momentum's ``min_signals`` x ``surge_volume`` (screens), then
``take_profit`` x ``stop_loss`` x ``max_picks`` (trade rules), cut to ``--configs``.
No assertions: this prints measurements.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

SCREEN = {"min_signals": [2, 3, 4, 5], "surge_volume": [1.5, 2.0, 2.5, 3.0, 3.5]}
TRADE = {"take_profit": [None, 0.03, 0.05, 0.08, 0.12], "stop_loss": [None, 0.03, 0.05, 0.08, 0.12],
         "max_picks": [None, 10]}


def grid_for(n: int) -> dict:
    """The largest grid (screens first) with at most ``n`` configurations, as a sweep grid."""
    keys = list(SCREEN) + list(TRADE)
    vals = {**SCREEN, **TRADE}
    # shrink the trade dimensions first, then the screens, until the product fits
    sizes = {k: len(vals[k]) for k in keys}
    order = list(TRADE)[::-1] + list(SCREEN)[::-1]
    while True:
        total = 1
        for k in keys:
            total *= sizes[k]
        if total <= n:
            break
        k = max(order, key=lambda x: sizes[x])
        sizes[k] -= 1
    return {k: vals[k][:sizes[k]] for k in keys}


def _client(market, cache: str):
    from finder import KiwoomAPI
    from finder.sim import in_process_transport

    return KiwoomAPI(transport=in_process_transport(market), cache_dir=cache, rate=5000)


def _phase(args: argparse.Namespace) -> None:
    import logging
    import resource

    logging.disable(logging.WARNING)
    import finder
    from finder import calendar, data
    from finder.sim import SyntheticMarket

    t0 = time.perf_counter()
    market = SyntheticMarket(seed=0, n_stocks=args.stocks)
    build_s = time.perf_counter() - t0
    api = _client(market, args.cache)
    data.set_default_client(api)
    sessions = calendar.sessions_in_range("2015-01-01", args.end)[-args.sessions:]
    codes = sorted(finder.get_stock_list(["KOSPI", "KOSDAQ"])["code"].astype(str))[: args.stocks]
    out = {"build_s": build_s, "stocks": len(codes), "sessions": len(sessions),
           "first": str(sessions[0].date()), "last": str(sessions[-1].date())}
    grid = grid_for(args.configs)
    kw = dict(universe=codes, horizons=(5,), benchmark=None, progress=False, blocks=16)
    if args.phase == "fill":
        t0 = time.perf_counter()
        finder.sweep("momentum", {"min_signals": [3]}, sessions[0], sessions[-1], **{**kw, "blocks": 2})
        out["fill_s"] = time.perf_counter() - t0
        out["requests"] = dict(finder.cache.info()["requests"])
    else:
        before = dict(finder.cache.info()["requests"])
        t0 = time.perf_counter()
        sw = finder.sweep("momentum", grid, sessions[0], sessions[-1], **kw)
        out["warm_s"] = time.perf_counter() - t0
        after = finder.cache.info()["requests"]
        out["requests"] = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        out["configs"] = len(sw.table)
        out["engines"] = sw.params.get("engines")
        out["verdict"] = sw.verdict()
        out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["dask"] = {}
        if args.workers:
            from distributed import Client, LocalCluster

            dgrid = grid_for(args.dask_configs or args.configs)
            local = None
            for w in [int(x) for x in args.workers.split(",") if x]:
                with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as lc, Client(lc) as client:
                    t0 = time.perf_counter()
                    dsw = finder.sweep("momentum", dgrid, sessions[0], sessions[-1], client=client, **kw)
                    secs = time.perf_counter() - t0
                if local is None:
                    t0 = time.perf_counter()
                    lsw = finder.sweep("momentum", dgrid, sessions[0], sessions[-1], **kw)
                    local = (time.perf_counter() - t0, lsw.table)
                same = dsw.table.equals(local[1])
                out["dask"][w] = {"seconds": secs, "configs": len(dsw.table), "local_s": local[0], "same": same}
    data.set_default_client(None)
    api.close()
    print(json.dumps(out, default=str))


def _child(phase: str, cache: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIWOOM_")}
    env["FINDER_CACHE_DIR"] = cache
    cmd = [sys.executable, __file__, "--phase", phase, "--cache", cache, "--stocks", str(args.stocks),
           "--sessions", str(args.sessions), "--configs", str(args.configs), "--end", args.end,
           "--workers", args.workers, "--dask-configs", str(args.dask_configs)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{phase} phase failed:\n{p.stderr[-3000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stocks", type=int, default=2500)
    ap.add_argument("--sessions", type=int, default=250)
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--dask-configs", type=int, default=0, help="configurations on the LocalCluster (default: --configs)")
    ap.add_argument("--workers", default="1,2", help="LocalCluster sizes to time, e.g. '1,2' ('' to skip)")
    ap.add_argument("--end", default="2025-10-31")
    ap.add_argument("--keep-cache", default=None)
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        _phase(args)
        return
    cache = args.keep_cache or tempfile.mkdtemp(prefix="finder-bench-sweep-")
    grid = grid_for(args.configs)
    n = 1
    for v in grid.values():
        n *= len(v)
    print(f"sweep bench: SyntheticMarket(n_stocks={args.stocks}), {args.sessions} sessions to {args.end}, "
          f"{n} configurations ({' x '.join(f'{k}[{len(v)}]' for k, v in grid.items())}), cache {cache}")
    fill = _child("fill", cache, args)
    print(f"fill (cold, not timed for the goal): {fill['fill_s']:.1f} s; requests {fill['requests']}; "
          f"market built in {fill['build_s']:.1f} s")
    warm = _child("warm", cache, args)
    c, s = warm["configs"], warm["warm_s"]
    print(f"warm sweep, fresh process: {c} configurations over {warm['stocks']} stocks x {warm['sessions']} sessions "
          f"({warm['first']}..{warm['last']}) in {s:.1f} s = {c / s:.2f} configurations/s; "
          f"goal 1,000 in < 60 s: {'met' if c >= 1000 and s < 60 else 'NOT met'} "
          f"({s / c * 1000:.0f} s per 1,000, {s / c * 1000 / 60:.2f}x the goal)")
    print(f"  peak memory (max RSS) {warm['max_rss_mb']:.0f} MB; upstream requests {warm['requests'] or 0} (goal 0); "
          f"scan engines {warm['engines']}")
    print(f"  verdict: {warm['verdict']}")
    for w, d in warm.get("dask", {}).items():
        print(f"LocalCluster {w} worker(s): {d['configs']} configurations in {d['seconds']:.1f} s "
              f"({d['configs'] / d['seconds']:.2f}/s; local run of the same grid {d['local_s']:.1f} s, "
              f"ratio {d['seconds'] / d['local_s']:.2f}); table identical to local: {d['same']}")


if __name__ == "__main__":
    main()
