"""Benchmark: bringing a warm cache of N stocks up to the next session, quotes vs per-stock walks.

Run:  python bench/refresh.py [--stocks 2500] [--rate 4]

What it does, against a real simulator on 127.0.0.1 with a synthetic market
of N stocks:

1. finds a session T with a few corporate actions (about 3) among them;
2. warms one cache with every stock as of the session before T;
3. copies that cache, moves the simulator's clock and FINDER_NOW to T after
   the cut-off, and brings the copies up to T two ways:
   * quotes: ``finder.cache.refresh`` (ka10095, 100 stocks a request);
   * per stock: ``get_ohlcv(code, 220)`` for every stock (one ka10081 walk each);
4. prints the requests each route sent (counted at the simulator), its wall
   time here, the time those requests would take at Kiwoom's limit
   (``--rate`` requests/s, default 4), and the ratios; then checks that both
   routes hold the same bars;
5. repeats the quotes route after five missed sessions, where quotes cannot
   fill the gap and ka10081 takes over.

Wall times here use a fast simulator; the projection at the real rate is
what a user waits for.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stocks", type=int, default=2500)
    ap.add_argument("--rate", type=float, default=4.0, help="Kiwoom's requests/s, for the projection")
    args = ap.parse_args()

    from finder import KiwoomAPI, calendar
    from finder.cache._store import Store
    from finder.sim import Simulator, SyntheticMarket

    t0 = time.perf_counter()
    market = SyntheticMarket(seed=0, n_stocks=args.stocks)
    print(f"market: {args.stocks} synthetic stocks, built in {time.perf_counter() - t0:.1f}s")

    # A session in 2025 with about three corporate actions among listed stocks.
    sessions = calendar.sessions_in_range("2025-02-03", "2025-11-27")
    actions_on: dict = {}
    for code in market.codes:
        for e in market.events(code):
            actions_on.setdefault(e.ex_date, []).append(code)
    target = min(sessions[1:], key=lambda d: (abs(len(actions_on.get(d, [])) - 3) if actions_on.get(d) else 99, d))
    prev = calendar.previous_session(target)
    today64 = np.datetime64(target.date(), "D")
    codes = [c for c in market.codes if market.is_listed(c, today64)
             and market.info(c).listed < prev - pd.Timedelta(days=30)]
    print(f"session {target.date()}: {len(actions_on.get(target, []))} corporate action(s) "
          f"({', '.join(actions_on.get(target, []))}); {len(codes)} stocks listed")

    work = Path(tempfile.mkdtemp(prefix="finder-bench-refresh-"))
    key, secret = "bench-app-key-0001", "bench-secret-0001"

    def at(day) -> str:
        return f"{pd.Timestamp(day).date()}T20:30:00+09:00"

    try:
        with Simulator(market=market, rate=None, now=at(prev)) as sim:
            os.environ["FINDER_NOW"] = at(prev)

            def api(folder: Path) -> KiwoomAPI:
                return KiwoomAPI(key, secret, sim.url, cache_dir=folder, rate=2000)

            warm = work / "warm"
            t = time.perf_counter()
            with api(warm) as a:
                for c in codes:
                    a.get_ohlcv(c, 220)
            print(f"warm-up as of {prev.date()}: {sim.stats()['requests'].get('ka10081', 0)} requests, "
                  f"{time.perf_counter() - t:.1f}s")
            for name in ("quotes", "per_stock", "missed"):
                shutil.copytree(warm, work / name)

            sim.set_now(at(target))
            os.environ["FINDER_NOW"] = at(target)
            results = {}
            import finder.cache as fcache

            sim.reset_stats()
            t = time.perf_counter()
            with api(work / "quotes") as a:
                out = fcache.refresh(codes, progress=False, client=a)
            results["quotes"] = (dict(sim.stats()["requests"]), time.perf_counter() - t)
            print(f"quotes route: {out}")

            sim.reset_stats()
            t = time.perf_counter()
            with api(work / "per_stock") as a:
                for c in codes:
                    a.get_ohlcv(c, 220)
            results["per_stock"] = (dict(sim.stats()["requests"]), time.perf_counter() - t)

            # Same bars both ways?
            mismatched = 0
            with api(work / "quotes") as qa, api(work / "per_stock") as pa:
                Store.for_client(qa).forget()
                for c in codes:
                    if not qa.get_ohlcv(c, 220).equals(pa.get_ohlcv(c, 220)):
                        mismatched += 1

            print()
            print(f"{'route':<12}{'ka10095':>9}{'ka10081':>9}{'total':>8}{'wall here':>12}{'at ' + str(args.rate) + '/s':>12}")
            totals = {}
            for name, (req, wall) in results.items():
                total = sum(v for k, v in req.items() if k != "au10001")
                totals[name] = total
                print(f"{name:<12}{req.get('ka10095', 0):>9}{req.get('ka10081', 0):>9}{total:>8}{wall:>11.2f}s"
                      f"{total / args.rate:>11.1f}s")
            n_actions = len([c for c in actions_on.get(target, []) if c in codes])
            print(f"goal: <= {int(np.ceil(len(codes) / 100))} + {n_actions} + a few requests for the quotes route")
            print(f"ratio per-stock / quotes: {totals['per_stock'] / max(totals['quotes'], 1):.0f}x fewer requests; "
                  f"wall here {results['per_stock'][1] / results['quotes'][1]:.1f}x")
            print(f"stocks whose 220 bars differ between the routes: {mismatched}")

            # Five missed sessions: quotes show only today, so ka10081 fills each gap.
            later = calendar.sessions_in_range(target, target + pd.Timedelta(days=14))[5]
            sim.set_now(at(later))
            os.environ["FINDER_NOW"] = at(later)
            sim.reset_stats()
            t = time.perf_counter()
            with api(work / "missed") as a:
                out = fcache.refresh(codes, progress=False, client=a)
            req = sim.stats()["requests"]
            print(f"\nafter 5 missed sessions ({prev.date()} -> {later.date()}): ka10095={req.get('ka10095', 0)} "
                  f"ka10081={req.get('ka10081', 0)} ({out['walked']} walked) in {time.perf_counter() - t:.1f}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
