"""What the old-shape adapter costs on warm calls: finder.compat.KiwoomAPI vs the cached finder.KiwoomAPI.

Against a simulator on a real socket, with a fresh cache folder: warm the cache
for ``--stocks`` stocks, then time warm calls both ways in the same run and
print the ratio, plus the per-call cost of the name, ranking and quote lookups
(all served from disk) and the requests each phase sent.  Asserts nothing.

    python bench/compat.py [--stocks 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stocks", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    now = "2025-11-28T20:30:00+09:00"
    tmp = tempfile.mkdtemp(prefix="finder-bench-compat-")
    os.environ.update({"FINDER_NOW": now, "FINDER_CACHE_DIR": os.path.join(tmp, "cache"),
                       "FINDER_STATE_DIR": os.path.join(tmp, "state"), "FINDER_RATE": "200"})
    from finder import KiwoomAPI
    from finder.compat import KiwoomAPI as CompatAPI
    from finder.sim import Simulator, default_market

    market = default_market()
    with Simulator(market, rate=None, now=now) as sim:
        cached = KiwoomAPI("bench-key", "bench-secret", sim.url)
        old = CompatAPI(client=cached)
        codes = old.get_top_codes("KOSPI", args.stocks)
        t0 = time.perf_counter()
        for c in codes:
            cached.get_ohlcv(c, 220, "2025-10-01")
        old.get_stock_name(codes[0])  # the day's stock lists
        cold = time.perf_counter() - t0
        cold_requests = sim.stats()["total_requests"]
        sim.reset_stats()

        def timed(fn) -> float:
            best = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                for c in codes:
                    fn(c)
                best = min(best, time.perf_counter() - t)
            return best / len(codes)

        base = timed(lambda c: cached.get_ohlcv(c, 220, "2025-10-01"))
        adapted = timed(lambda c: old.get_ohlcv(c, 220, "20251001"))
        name = timed(old.get_stock_name)
        top = timed(lambda c: old.get_top_codes("KOSPI", 20))
        quote = timed(old.get_stock_quote)
        quote_requests = sim.stats()["requests"].get("ka10095", 0)
        warm_other = sim.stats()["total_requests"] - quote_requests
    print(f"stocks: {len(codes)}; cold fill {cold:.2f} s, {cold_requests} requests")
    print(f"warm get_ohlcv(220) per call: finder {base * 1e3:.2f} ms, compat {adapted * 1e3:.2f} ms "
          f"(ratio {adapted / base:.2f}x)")
    print(f"compat per call: get_stock_name {name * 1e6:.1f} us, get_top_codes {top * 1e3:.2f} ms, "
          f"get_stock_quote {quote * 1e3:.2f} ms (first call per stock fetches: {quote_requests} ka10095)")
    print(f"requests during the warm phase, quotes aside: {warm_other}")
    print("(ratio = compat / finder per warm call, same run; the difference is building the old frame)")


if __name__ == "__main__":
    main()
