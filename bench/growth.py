"""Benchmark: does the cache grow with every session?  60 daily refreshes of N stocks vs a fresh build.

Run:  python bench/growth.py [--stocks 100] [--sessions 60] [--count 220]

What it does, against a real simulator on 127.0.0.1 with a synthetic market:

1. "daily": one cache folder; ``get_panel(codes, count)`` once per session
   after the cut-off, with the simulator's clock and ``FINDER_NOW`` moved one
   session at a time, for ``--sessions`` sessions (the way a researcher who
   refreshes every evening lives with the cache);
2. "fresh": a second, empty folder; one ``get_panel(codes, count)`` on the
   last session (the same histories, built at once);
3. prints both folders' bytes and file counts, the ratios daily/fresh (goal:
   at most 1.2x) and the requests each route sent, counted at the simulator
   (daily: per session; the goal is about one ka10095 request per 100 stocks
   and session, plus one ka10081 walk per corporate action).

Each step runs in this one process (the disk layout, which is what grows, is
the same as with a fresh process per step).  Nothing here is timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def folder_size(root: Path) -> tuple[int, int]:
    """(bytes, files) under ``root``."""
    size = files = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            try:
                size += os.lstat(os.path.join(dirpath, n)).st_size
                files += 1
            except OSError:
                pass
    return size, files


def run(stocks: int = 100, sessions: int = 60, count: int = 220, start: str = "2025-06-02", seed: int = 0,
        workdir: Path | None = None, progress: bool = True) -> dict:
    from finder import KiwoomAPI, calendar
    from finder.cache._ohlcv import get_panel
    from finder.sim import Simulator, SyntheticMarket

    market = SyntheticMarket(seed=seed, n_stocks=max(20, stocks))
    days = list(calendar.sessions_in_range(start, pd.Timestamp(start) + pd.Timedelta(days=3 * sessions)))[:sessions]
    import numpy as np

    first = np.datetime64(days[0].date(), "D")
    codes = [c for c in market.codes if market.is_listed(c, np.datetime64(days[-1].date(), "D"))
             and market.info(c).listed < days[0] - pd.Timedelta(days=30)][:stocks]
    actions = sum(1 for c in codes for e in market.events(c) if days[0] < e.ex_date <= days[-1])
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="finder-bench-growth-"))
    work.mkdir(parents=True, exist_ok=True)
    key, secret = "bench-app-key-0001", "bench-secret-0001"
    at = lambda d: f"{pd.Timestamp(d).date()}T20:30:00+09:00"  # noqa: E731
    old_now = os.environ.get("FINDER_NOW")
    out: dict = {"stocks": len(codes), "sessions": len(days), "count": count, "actions": actions,
                 "first": str(first), "last": str(days[-1].date())}
    try:
        with Simulator(market=market, rate=None, now=at(days[0])) as sim:
            daily = work / "daily"
            per_session = []
            from tqdm.auto import tqdm

            with KiwoomAPI(key, secret, sim.url, cache_dir=daily, rate=2000) as api:
                for i, day in enumerate(tqdm(days, desc="sessions", unit="session", disable=not progress)):
                    sim.set_now(at(day))
                    os.environ["FINDER_NOW"] = at(day)
                    sim.reset_stats()
                    panel = get_panel(api, codes, count, progress=False)
                    if panel.attrs.get("missing"):
                        raise RuntimeError(f"stocks left out on {day.date()}: {panel.attrs['missing']}")
                    per_session.append(dict(sim.stats()["requests"]))
            fresh = work / "fresh"
            sim.reset_stats()
            with KiwoomAPI(key, secret, sim.url, cache_dir=fresh, rate=2000) as api:
                get_panel(api, codes, count, progress=False)
            fresh_requests = dict(sim.stats()["requests"])
        d_bytes, d_files = folder_size(daily)
        f_bytes, f_files = folder_size(fresh)
        later = per_session[1:]
        out.update({
            "daily_bytes": d_bytes, "daily_files": d_files, "fresh_bytes": f_bytes, "fresh_files": f_files,
            "bytes_ratio": d_bytes / f_bytes, "files_ratio": d_files / f_files,
            "first_session_requests": per_session[0],
            "later_requests": {k: sum(r.get(k, 0) for r in later) for k in sorted({k for r in later for k in r})},
            "fresh_requests": fresh_requests,
        })
    finally:
        if old_now is None:
            os.environ.pop("FINDER_NOW", None)
        else:
            os.environ["FINDER_NOW"] = old_now
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return out


def report(r: dict) -> str:
    n, s = r["stocks"], r["sessions"]
    later = r["later_requests"]
    lines = [
        f"{n} stocks, get_panel(codes, {r['count']}) once per session for {s} sessions "
        f"({r['first']} .. {r['last']}; {r['actions']} corporate actions among them)",
        f"daily cache: {r['daily_bytes'] / 1e6:8.2f} MB in {r['daily_files']:6d} files",
        f"fresh build: {r['fresh_bytes'] / 1e6:8.2f} MB in {r['fresh_files']:6d} files",
        f"ratio daily/fresh: size {r['bytes_ratio']:.3f}x, files {r['files_ratio']:.3f}x   (goal: <= 1.2x)",
        f"requests, first session: {r['first_session_requests']}",
        f"requests, the {s - 1} later sessions: {later} "
        f"({sum(later.values()) / max(s - 1, 1):.2f} per session; "
        f"ka10081 {later.get('ka10081', 0)} for {r['actions']} actions)",
        f"requests, fresh build: {r['fresh_requests']}",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stocks", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--count", type=int, default=220)
    ap.add_argument("--start", default="2025-06-02")
    args = ap.parse_args()
    print(report(run(args.stocks, args.sessions, args.count, args.start)))


if __name__ == "__main__":
    main()
