"""Benchmark: a warm momentum scan of ~2,500 stocks, split into data loading, indicators and rules.

Run from the repository root::

    python bench/scan.py                 # panels built from the real KRX sample (synthetic if absent)
    python bench/scan.py --stocks 2500 --repeat 5 --real 2500

Parts:

* **indicators / rules**: ``scan_panels`` on an in-memory 2,500-stock panel.
  The panel is made from ``../shared/data/krx_daily_sample.csv.gz`` (469 real
  stocks, each copied with its own random scale and noise until there are
  ``--stocks`` columns) or, without that file, from random walks.
  ``prepare`` is slicing to the session and bottom-aligning each stock's bars.
* **data loading**: the warm ``finder.data.get_panel`` load of ``--real``
  KOSPI+KOSDAQ codes, timed after one call that fills the cache if it is
  cold, then the momentum scan of that real panel.  With credentials it uses
  the default client and cache; without, a ``--sim-stocks``-stock simulator
  market (the built-in one has only ~300) with its own temporary cache
  folder (removed afterwards), so the first call is a cold fill.  Skipped with
  a message when ``finder.data`` is unavailable.

Prints numbers only; the goal (under 2 s for everything, warm) is checked by
reading, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finder import calendar  # noqa: E402
from finder.analysis import scan_panels  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "krx_daily_sample.csv.gz"
FIELDS = ["open", "high", "low", "close", "volume", "value"]


def panels_from_sample(n_stocks: int, seed: int = 0) -> tuple[dict[str, pd.DataFrame], str]:
    df = pd.read_csv(SAMPLE, dtype={"code": str}, parse_dates=["date"])
    base = {f: df.pivot(index="date", columns="code", values=f).sort_index()
            for f in ["open", "high", "low", "close", "volume"]}
    rng = np.random.default_rng(seed)
    out: dict[str, list[pd.DataFrame]] = {f: [] for f in base}
    made, copy = 0, 0
    while made < n_stocks:
        take = min(n_stocks - made, base["close"].shape[1])
        cols = base["close"].columns[:take]
        scale = rng.lognormal(0, 0.5, take)
        noise = np.exp(rng.normal(0, 0.004, (len(base["close"]), take))) if copy else 1.0
        vol_scale = rng.lognormal(0, 0.5, take)
        names = [f"{c}-{copy}" if copy else c for c in cols]  # unique labels for the copies
        for f in ("open", "high", "low", "close"):
            out[f].append(pd.DataFrame(base[f][cols].to_numpy() * scale * noise, index=base[f].index, columns=names))
        out["volume"].append(pd.DataFrame(np.round(base["volume"][cols].to_numpy() * vol_scale),
                                          index=base["volume"].index, columns=names))
        made += take
        copy += 1
    panels = {f: pd.concat(v, axis=1) for f, v in out.items()}
    panels["value"] = panels["close"] * panels["volume"]
    return panels, f"{SAMPLE.name}: 469 real stocks, copied with noise to {n_stocks}"


def panels_synthetic(n_stocks: int, seed: int = 0) -> tuple[dict[str, pd.DataFrame], str]:
    sessions = calendar.sessions_in_range("2024-06-03", "2025-11-28")
    rng = np.random.default_rng(seed)
    t = len(sessions)
    c = 10_000 * np.exp(np.cumsum(rng.normal(0.0005, 0.025, (t, n_stocks)), axis=0))
    h = c * (1 + rng.uniform(0, 0.03, c.shape))
    lo = c * (1 - rng.uniform(0, 0.03, c.shape))
    v = rng.lognormal(12, 0.7, c.shape).round()
    cols = [f"{i:06d}" for i in range(n_stocks)]
    mk = lambda a: pd.DataFrame(a, index=sessions, columns=cols)  # noqa: E731
    p = {"open": mk((h + lo) / 2), "high": mk(h), "low": mk(lo), "close": mk(c), "volume": mk(v)}
    p["value"] = p["close"] * p["volume"]
    return p, f"synthetic random walks ({SAMPLE} not found)"


def time_scan(panels: dict[str, pd.DataFrame], session: pd.Timestamp, repeat: int) -> tuple[dict[str, float], int, int]:
    runs = []
    res = None
    for _ in range(repeat + 1):  # the first run warms imports and numpy
        t: dict[str, float] = {}
        start = time.perf_counter()
        res = scan_panels(panels, session, "momentum", timings=t)
        t["total"] = time.perf_counter() - start
        runs.append(t)
    runs = runs[1:]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return med, res.attrs["scanned"], len(res)


def time_real_load(n: int, count: int, session: pd.Timestamp, repeat: int, sim_stocks: int) -> None:
    """Warm ``get_panel`` of ``n`` codes: the default client with credentials, else a simulator of ``sim_stocks``."""
    import os
    import tempfile

    try:
        from finder import data
    except Exception as exc:  # the data layer may not be importable yet
        print(f"data loading: skipped, finder.data unavailable ({type(exc).__name__}: {exc})")
        return
    client = None
    folder = None
    try:
        if sim_stocks and not (os.environ.get("KIWOOM_APPKEY") and os.environ.get("KIWOOM_SECRETKEY")):
            # The built-in simulator has ~300 stocks; build one the size,
            # with its own cache folder so the user's cache is left alone.
            from finder import KiwoomAPI
            from finder.sim import SyntheticMarket, in_process_transport

            t0 = time.perf_counter()
            market = SyntheticMarket(n_stocks=sim_stocks)
            folder = tempfile.mkdtemp(prefix="finder-bench-scan-")
            client = KiwoomAPI(transport=in_process_transport(market), cache_dir=folder, rate=1000)
            data.set_default_client(client)
            where = (f"a {sim_stocks}-stock simulator (built in {time.perf_counter() - t0:.1f} s), "
                     f"cache in {folder}")
        else:
            where = "the default client and cache"
        stocks = data.get_stock_list(["KOSPI", "KOSDAQ"])
        if len(stocks) < n:  # top up with ETFs to reach the size asked for
            stocks = pd.concat([stocks, data.get_stock_list("ETF")], ignore_index=True)
        codes = sorted(stocks["code"])[:n]
        print(f"data loading through finder.data.get_panel from {where}:")
        print(f"  {len(codes)} codes ({', '.join(sorted(set(stocks['market'])))}), count={count}, base_dt={session.date()}, fields={FIELDS}")
        t0 = time.perf_counter()
        data.get_panel(codes, count=count, base_dt=session, field=FIELDS)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            p = data.get_panel(codes, count=count, base_dt=session, field=FIELDS, progress=False)
            warm.append(time.perf_counter() - t0)
        missing = len(p["close"].attrs.get("missing", {}))
        load = statistics.median(warm)
        print(f"  first call (fills the cache if cold): {first:8.3f} s")
        print(f"  warm load, median of {repeat}:           {load:8.3f} s   "
              f"({p['close'].shape[1]} stocks × {p['close'].shape[0]} dates, {missing} missing)")
        meta = stocks.set_index("code")
        runs = []
        for _ in range(repeat):
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            res = scan_panels(p, session, "momentum", meta=meta, timings=t)
            t["total"] = time.perf_counter() - t0
            runs.append(t)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"  momentum on that panel: prepare {med['prepare']:.3f} s, indicators {med['indicators']:.3f} s, "
              f"rules {med['rules']:.3f} s, total {med['total']:.3f} s "
              f"({res.attrs['scanned']} scanned, {len(res)} matched)")
        print(f"  warm end to end (data loading + scan): {load + med['total']:.3f} s")
    except Exception as exc:
        print(f"data loading: failed, {type(exc).__name__}: {exc}")
    finally:
        if client is not None:
            data.set_default_client(None)
            client.close()
        if folder is not None:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)  # the bench's own temporary cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stocks", type=int, default=2500)
    ap.add_argument("--date", default="2025-10-01")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--real", type=int, default=2500, help="codes for the real warm load (0 to skip)")
    ap.add_argument("--sim-stocks", type=int, default=2500,
                    help="without credentials, size of the simulator market to load from (0: the default client)")
    args = ap.parse_args()
    session = calendar.session_on_or_before(args.date)

    t0 = time.perf_counter()
    if SAMPLE.exists():
        panels, source = panels_from_sample(args.stocks)
    else:
        print(f"note: {SAMPLE} is absent; using synthetic panels for the indicators/rules part")
        panels, source = panels_synthetic(args.stocks)
    build = time.perf_counter() - t0
    print(f"panel: {source}; {panels['close'].shape[1]} stocks × {panels['close'].shape[0]} dates "
          f"(built in {build:.2f} s, not part of the scan)")
    print(f"momentum scan of {session.date()}, lookback 220, median of {args.repeat} warm runs:")
    med, scanned, matched = time_scan(panels, session, args.repeat)
    for k in ("prepare", "indicators", "rules", "total"):
        print(f"  {k:<11} {med[k]:8.3f} s")
    print(f"  ({scanned} stocks scanned, {matched} matched)")
    if args.real > 0:
        time_real_load(args.real, 220, session, args.repeat, args.sim_stocks)
    else:
        print("data loading: skipped (--real 0)")


if __name__ == "__main__":
    main()
