"""Bad input at every public entry point: one table, one test.

Entry points: ``finder.get_ohlcv``, ``finder.get_panel``,
``finder.analysis.scan.scan``, ``finder.analysis.backtest.backtest``,
``KiwoomAPI.get_ohlcv``, ``KiwoomAPI.get_stock_list``, and the ``finder``
command, both in-process (``finder.cli.main``) and as a real subprocess.

Each bad value must give a clear error naming it (the CLI: one line on
stderr, exit status 2, no traceback), send nothing to the server and write
nothing into the cache folder.  Unknown codes are the exception that must
reach the server (only Kiwoom knows which codes exist): they give a typed
``StockNotFoundError`` naming the code (``get_panel`` and ``scan`` list it in
``attrs['missing']``) and still leave no cache entry.

The module-level functions use the default client built from the
environment, pointed here at a real simulator on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import finder
from finder._exceptions import InvalidInputError, StockNotFoundError
from _reliability import SIM_NOW, cache_files, clean_env, default_client_on, forget_stores
from _support import APP_KEY, REPO, SECRET_KEY, client

GOOD = dict(code="005930", count=10, base_dt="2025-10-01")
CODES = ["005930", "000660"]

BAD_DATES = [
    "2025/10/01", "01-10-2025", "2025-1-1", "2025.10.01", "20251301", "2025-02-30", "2025-13-01", "yesterday",
    "", " ", "251001", "2025-10-01T10:00", "2025년10월01일", 20251001, 2025.1001, pd.NaT, ["2025-10-01"], True,
    "1980-01-01",                                             # before the KRX calendar finder knows
]
FUTURE = ["2099-01-01", "2025-11-29", pd.Timestamp("2025-11-29 01:00", tz="Asia/Seoul"), dt.date(2026, 1, 2)]
BAD_CODES = ["5930", 5930, "", None, "KRX:005930", "005930.KS", "ABCDEF", "005930_XX", " 00593 0", b"005930"]
UNKNOWN_CODES = ["123456", "999990"]                       # well-formed; the server knows neither
BAD_COUNTS = [0, -5, 10**9, "10", 2.5, True, None, float("nan")]
BAD_MARKETS = ["NASDAQ", "", "KOSPI+", 5, None, ["KOSPI", 7]]


def shown(v) -> str:
    """How an error message may show the value: its repr, or its text (CLI strings)."""
    return repr(v) if not isinstance(v, str) else v


CASES: list[tuple] = []   # (entry point, arguments, the bad value's text, expected outcome)


def case(entry, args, bad, expect="invalid"):
    CASES.append(pytest.param(entry, args, bad, expect, id=f"{entry}-{len(CASES)}:{str(bad)[:24]}"))


for v in BAD_DATES + FUTURE:
    case("get_ohlcv", dict(GOOD, base_dt=v), v)
    case("KiwoomAPI.get_ohlcv", dict(GOOD, base_dt=v), v)
    case("get_panel", dict(codes=CODES, count=10, base_dt=v), v)
    case("scan", dict(date=v, universe=CODES), v)
    if v != "1980-01-01":   # a start before the calendar only clips the range: not an error
        case("backtest", dict(start=v, end="2025-10-01", universe=CODES), v)
    case("backtest", dict(start="2025-09-01", end=v, universe=CODES), v)
for v in BAD_CODES:
    case("get_ohlcv", dict(GOOD, code=v), v)
    case("KiwoomAPI.get_ohlcv", dict(GOOD, code=v), v)
    case("get_panel", dict(codes=["000660", v], count=10, base_dt="2025-10-01"), v)
    case("scan", dict(date="2025-10-01", universe=["000660", v]), v)
    case("backtest", dict(start="2025-09-01", end="2025-09-05", universe=[v]), v)
for v in UNKNOWN_CODES:
    for entry in ("get_ohlcv", "KiwoomAPI.get_ohlcv"):
        case(entry, dict(GOOD, code=v), v, "unknown")
    case("get_panel", dict(codes=[v], count=10, base_dt="2025-10-01"), v, "unknown")
    case("scan", dict(date="2025-10-01", universe=[v]), v, "unknown")
for v in BAD_COUNTS:
    case("get_ohlcv", dict(GOOD, count=v), v)
    case("KiwoomAPI.get_ohlcv", dict(GOOD, count=v), v)
    case("get_panel", dict(codes=CODES, count=v, base_dt="2025-10-01"), v)
for v in (-1, 0, 10**9, 2.5, "220"):
    case("scan", dict(date="2025-10-01", universe=CODES, lookback=v), v)
    case("backtest", dict(start="2025-09-01", end="2025-09-05", universe=CODES, lookback=v), v)
for v in BAD_MARKETS:
    case("KiwoomAPI.get_stock_list", dict(market=v), v)
for v in ("NASDAQ", "KOSPI+NYSE", 5):
    case("scan", dict(date="2025-10-01", universe=v), v)
    case("backtest", dict(start="2025-09-01", end="2025-09-05", universe=v), v)
for v in ("nope", "Momentum!", 7):
    case("scan", dict(date="2025-10-01", universe=CODES, conditions=v), v)
    case("backtest", dict(conditions=v, start="2025-09-01", end="2025-09-05", universe=CODES), v)
# start after end, and a range holding no session
case("backtest", dict(start="2025-10-01", end="2025-09-01", universe=CODES), "2025-10-01")
case("backtest", dict(start="2025-10-04", end="2025-10-05", universe=CODES), "2025-10-04")
# wrong types
for entry in ("get_ohlcv", "KiwoomAPI.get_ohlcv"):
    case(entry, dict(GOOD, adjusted="yes"), "yes")
    case(entry, dict(GOOD, adjusted=1), 1)
for args, bad in [(dict(codes=5930), 5930), (dict(codes="005930,000660"), "005930,000660"), (dict(codes=[]), "codes"),
                  (dict(codes={"005930": 1}), {"005930": 1}), (dict(codes=CODES, field="closing"), "closing"),
                  (dict(codes=CODES, field=5), 5), (dict(codes=CODES, adjusted="no"), "no"),
                  (dict(codes=CODES, progress="x"), "x")]:
    case("get_panel", dict(dict(count=10, base_dt="2025-10-01"), **args), bad)
for args, bad in [(dict(top=0), 0), (dict(top="x"), "x"), (dict(matches_only="yes"), "yes"), (dict(universe=[]), "[]")]:
    case("scan", dict(dict(date="2025-10-01", universe=CODES), **args), bad)
for args, bad in [(dict(horizons=(-1,)), -1), (dict(horizons="x"), "x"), (dict(max_picks=0), 0), (dict(entry="x"), "x"),
                  (dict(cost_bps=-1), -1), (dict(take_profit=0), 0), (dict(take_profit=50), 50), (dict(stop_loss="5%"), "5%"),
                  (dict(progress="x"), "x"), (dict(equity_horizon=7, horizons=(1, 5)), 7)]:
    case("backtest", dict(dict(start="2025-09-01", end="2025-09-05", universe=CODES), **args), bad)
# the command line, in-process
for argv, bad in [
    (["ohlcv", "5930"], "5930"), (["ohlcv", "005930", "--count", "-5"], "-5"), (["ohlcv", "005930", "--count", "0"], "0"),
    (["ohlcv", "005930", "--count", "abc"], "abc"), (["ohlcv", "005930", "--count", "99999999"], "99999999"),
    (["ohlcv", "005930", "--date", "2025/10/01"], "2025/10/01"), (["ohlcv", "005930", "--date", "20251341"], "20251341"),
    (["ohlcv", "005930", "--date", "2099-01-01"], "2099-01-01"), (["ohlcv", "005930", "--date", "1980-01-01"], "1980-01-01"),
    (["ohlcv", "005930", "--date", ""], "''"),
    (["scan", "--date", "2025-10-01", "--preset", "nope", "--universe", "KOSPI"], "nope"),
    (["scan", "--date", "2025-10-01", "--universe", "NASDAQ"], "NASDAQ"),
    (["scan", "--date", "2030-01-01", "--universe", "KOSPI"], "2030-01-01"),
    (["scan", "--date", "01/10/2025", "--universe", "KOSPI"], "01/10/2025"),
    (["scan", "--date", "2025-10-01", "--universe", "KOSPI", "--top", "0"], "0"),
    (["scan", "--date", "2025-10-01", "--universe", "KOSPI", "--top", "many"], "many"),
    (["scan", "--universe", "KOSPI"], "--date"),
    (["cache", "prune", "--max-size", "2XB"], "2XB"), (["cache", "prune", "--older-than", "30x"], "30x"),
    (["cache", "prune", "--max-size", "-5"], "-5"),
    (["cache", "clear", "--code", "12"], "12"), (["cache", "warm", "--codes", "5930"], "5930"),
    (["cache", "warm", "--universe", "NASDAQ"], "NASDAQ"), (["cache", "warm", "--codes", "005930", "--count", "-1"], "-1"),
    (["cache", "warm", "--codes", "005930", "--date", "2099-01-01"], "2099-01-01"),
    (["sim", "serve", "--port", "99999999"], "99999999"), (["sim", "serve", "--port", "http"], "http"),
    (["bogus"], "bogus"),
]:
    case("cli", argv, bad)
case("cli", ["ohlcv", "123456", "--date", "2025-10-01"], "123456", "unknown")
case("cli", ["ohlcv", "999990", "--date", "2025-10-01"], "999990", "unknown")
# ...and as a real `finder` process
case("finder", ["ohlcv", "005930", "--date", "2025/13/01"], "2025/13/01")
case("finder", ["scan", "--date", "2025-10-01", "--preset", "nope"], "nope")
case("finder", ["ohlcv", "123456", "--date", "2025-10-01"], "123456", "unknown")


@pytest.fixture(scope="module")
def sim(sim_market):
    """One simulator for the whole table (a fresh one per case costs 0.1 s to stop); counts are reset per case."""
    from finder.sim import Simulator

    with Simulator(sim_market, rate=None, now=SIM_NOW) as s:
        yield s


@pytest.fixture
def env(sim, tmp_path, monkeypatch):
    with default_client_on(sim, monkeypatch, tmp_path / "cache", APP_KEY, SECRET_KEY) as root:
        yield root


def call(entry: str, args, root: Path, sim, capsys):
    """Run one entry point; return (exception or result, CLI (status, stderr) or None)."""
    from finder.analysis.backtest import backtest
    from finder.analysis.scan import scan

    if entry == "cli":
        from finder.cli import main

        capsys.readouterr()
        try:
            status = main(args)
        except SystemExit as exc:   # argparse's own errors
            status = exc.code
        return None, (status, capsys.readouterr().err)
    if entry == "finder":
        exe = Path(sys.executable).with_name("finder")
        proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, cwd=str(REPO))
        return None, (proc.returncode, proc.stderr)
    fn = {
        "get_ohlcv": lambda: finder.get_ohlcv(**args),
        "get_panel": lambda: finder.get_panel(**args),
        "scan": lambda: scan(**args),
        "backtest": lambda: backtest(**{"progress": False, **args}),
    }.get(entry)
    try:
        if fn is not None:
            return fn(), None
        with client(sim, root) as api:
            if entry == "KiwoomAPI.get_ohlcv":
                return api.get_ohlcv(**args), None
            return api.get_stock_list(**args), None
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        return exc, None


@pytest.mark.parametrize("entry,args,bad,expect", CASES)
def test_bad_input(entry, args, bad, expect, env, sim, capsys):
    root = env
    sim.reset_stats()
    out, cli = call(entry, args, root, sim, capsys)
    text = shown(bad)
    st = sim.stats()
    if cli is not None:
        status, err = cli
        assert status == 2, (status, err)
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert text.strip("'") in lines[0], (text, lines[0])
        if expect == "unknown":
            assert "StockNotFoundError" in err or "no daily bars" in err or "1902" in err, err
    elif expect == "unknown" and entry in ("get_panel", "scan"):
        assert not isinstance(out, Exception), out
        missing = out.attrs["missing"]
        assert list(missing) == [bad] and missing[bad].startswith("StockNotFoundError") and bad in missing[bad]
    else:
        want = StockNotFoundError if expect == "unknown" else InvalidInputError
        assert isinstance(out, want), f"{entry}({args}) gave {out!r}, not {want.__name__}"
        message = str(out)
        assert text in message or str(bad) in message, (text, message)
    if expect == "unknown":
        # Only Kiwoom knows a code does not exist: one walk's first page (plus the token), nothing more.
        assert st["requests"].get("ka10081", 0) == 1, st["requests"]
        files = cache_files(root)
        # The day's stock lists (which confirm the code is not listed) may be cached; no bars are.
        bars = {name: found for name, found in files.entries.items() if name != "stock_list"}
        assert not files.pointers and not any(bars.values()) and not files.temp
    else:
        assert st["total_requests"] == 0, st["requests"]
        written = [p for p in root.rglob("*") if not p.is_dir()] if root.exists() else []
        assert not written, written
