"""Benchmark: the client's pacing against a Kiwoom-like limit, with 1 and with 4 processes.

Run:  python bench/client.py [--server-rate 5] [--client-rate 4] [--seconds 10]

A real simulator on 127.0.0.1 enforces ``--server-rate`` requests/s per
(app key, api-id) with a burst of 2, as Kiwoom does.  Clients share one app key
and one cache folder (so one pacing file) and page ka10081 walks as fast as
their limiter lets them, first in 1 process, then in 4.  It prints, for each
run: requests sent, the sustained rate (requests / wall time), rate-limit
rejections (429) the server counted, and pages per walk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import json, os, time
from finder import KiwoomAPI
api = KiwoomAPI(os.environ["B_KEY"], os.environ["B_SECRET"], os.environ["B_URL"], cache=False,
                cache_dir=os.environ["B_CACHE"], rate=float(os.environ["B_RATE"]))
codes = os.environ["B_CODES"].split(",")
deadline = time.time() + float(os.environ["B_SECONDS"])
walks = rows = 0
i = 0
first = last = None
while time.time() < deadline:
    t = time.time()
    rows += len(api.get_ohlcv(codes[i % len(codes)], 1800, "2025-10-01"))   # 3 pages a walk
    first = first or t
    last = time.time()
    walks += 1
    i += 1
print(json.dumps({"walks": walks, "rows": rows, "first": first, "last": last}))
"""


def run(sim, n_proc: int, client_rate: float, seconds: float, codes: list[str]) -> dict:
    cache = tempfile.mkdtemp(prefix="finder-bench-client-")
    env = dict(os.environ, B_KEY="bench-app-key-0002", B_SECRET="bench-secret-0002", B_URL=sim.url, B_CACHE=cache,
               B_RATE=str(client_rate), B_CODES=",".join(codes), B_SECONDS=str(seconds),
               FINDER_NOW="2025-11-28T20:30:00+09:00")
    # Warm the token outside the timed window: one login for the app key, shared by all.
    subprocess.run([sys.executable, "-c", WORKER], env={**env, "B_SECONDS": "0"}, check=True, capture_output=True)
    sim.reset_stats()
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(n_proc)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - t0
    st = sim.stats()
    req = st["requests"].get("ka10081", 0)
    walks = sum(o["walks"] for o in outs)
    # The sustained rate over the window in which requests were flowing (process start-up excluded).
    window = max(o["last"] for o in outs if o["last"]) - min(o["first"] for o in outs if o["first"])
    return {"processes": n_proc, "requests": req, "wall": window, "rate": req / window,
            "rejected": st["total_rate_limited"], "walks": walks, "pages_per_walk": req / max(walks, 1),
            "token_issues": st["token_issues"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-rate", type=float, default=5.0)
    ap.add_argument("--client-rate", type=float, default=4.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from finder.sim import Simulator, default_market

    market = default_market()
    codes = [c for c in market.codes if market.info(c).listed.year < 2015][:20]
    with Simulator(market=market, rate=args.server_rate, burst=2, now="2025-11-28T20:30:00+09:00") as sim:
        print(f"server limit {args.server_rate}/s (burst 2) per (app key, api-id); client pacing {args.client_rate}/s; "
              f"{args.seconds:.0f}s per run (plus process start-up)")
        print(f"{'processes':>9}{'requests':>10}{'window s':>9}{'req/s':>8}{'429s':>6}{'pages/walk':>12}{'tokens':>8}")
        for n in (1, 4):
            r = run(sim, n, args.client_rate, args.seconds, codes)
            print(f"{r['processes']:>9}{r['requests']:>10}{r['wall']:>9.1f}{r['rate']:>8.2f}{r['rejected']:>6}"
                  f"{r['pages_per_walk']:>12.2f}{r['token_issues']:>8}")
        print("(window: from the first request to the last answer, all processes together)")


if __name__ == "__main__":
    main()
