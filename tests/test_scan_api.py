"""scan(): dates, universes, bad input before any request, and no look-ahead through the data layer.

``finder.data`` is replaced by a fake that follows its contract (last
``count`` bars on or before ``base_dt``, codes it cannot serve in
``attrs['missing']``) and records every request.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

import finder
from finder import calendar
from finder._exceptions import InvalidInputError
from finder.analysis import Condition, Universe, close, scan, sma

from test_scan_panels import synthetic  # tests/ is on sys.path (no package)

NOW = "2025-11-28T21:00+09:00"  # after the cut-off: 2025-11-28's bar is final


class FakeData:
    """The data-layer contract over in-memory panels; records requests."""

    def __init__(self, panels: dict[str, pd.DataFrame], markets: dict[str, str]) -> None:
        self.panels = panels
        self.markets = markets
        self.calls: list[tuple] = []

    def get_stock_list(self, market="KOSPI"):
        self.calls.append(("get_stock_list", market))
        wanted = [market] if isinstance(market, str) else list(market)
        rows = [(c, f"name {c}", m, pd.Timestamp("2000-01-01")) for c, m in self.markets.items() if m in wanted]
        return pd.DataFrame(rows, columns=["code", "name", "market", "listed"])

    def get_panel(self, codes, count=220, base_dt=None, field="close", adjusted=True, progress=None):
        codes = list(codes)
        self.calls.append(("get_panel", tuple(codes), count, pd.Timestamp(base_dt), tuple(field)))
        base = pd.Timestamp(base_dt)
        out: dict[str, dict[str, pd.Series]] = {f: {} for f in field}
        missing = {}
        for c in codes:
            if c not in self.panels["close"].columns:
                missing[c] = "StockNotFoundError: unknown code"
                continue
            s = self.panels["close"][c].loc[:base].dropna()
            if s.empty:
                missing[c] = "StockNotFoundError: no bars"
                continue
            rows = s.index[-count:]
            for f in field:
                out[f][c] = self.panels[f][c].loc[rows]
        res = {}
        for f in field:
            df = pd.DataFrame(out[f]).sort_index() if out[f] else pd.DataFrame()
            df.index.name = "date"
            df.attrs["missing"] = dict(missing)
            res[f] = df
        return res

    @property
    def panel_calls(self):
        return [c for c in self.calls if c[0] == "get_panel"]


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("FINDER_NOW", NOW)
    panels = synthetic(n_codes=40, seed=4)
    codes = list(panels["close"].columns)
    markets = {c: ("KOSPI" if i % 3 else "KOSDAQ") for i, c in enumerate(codes)}
    f = FakeData(panels, markets)
    mod = types.ModuleType("finder.data")
    mod.get_panel = f.get_panel
    mod.get_stock_list = f.get_stock_list
    monkeypatch.setitem(sys.modules, "finder.data", mod)
    monkeypatch.setattr(finder, "data", mod, raising=False)
    return f


def test_scan_one_panel_request_for_the_whole_universe(fake):
    res = scan("2025-09-15")
    assert len(fake.panel_calls) == 1
    _, codes, count, base_dt, fields = fake.panel_calls[0]
    assert len(codes) == 40 and count == 220 and base_dt == pd.Timestamp("2025-09-15")
    assert set(fields) == {"open", "high", "low", "close", "volume", "value"}
    assert res.attrs["session"] == pd.Timestamp("2025-09-15") and res.attrs["session_note"] is None
    assert res.attrs["screen"] == "momentum" and res.attrs["params"]["min_signals"] == 3
    assert "survivorship" in res.attrs
    assert set(res["market"]) <= {"KOSPI", "KOSDAQ"} and res["name"].str.startswith("name ").all()


@pytest.mark.parametrize("date,session", [
    ("2025-10-03", "2025-10-02"),     # National Foundation Day
    ("20251004", "2025-10-02"),       # Saturday, compact form
    (pd.Timestamp("2025-10-05"), "2025-10-02"),
    ("2025-06-03", "2025-06-02"),     # election day
])
def test_non_session_resolves_to_previous_session(fake, date, session):
    res = scan(date, conditions=close > sma(close, 20))
    assert res.attrs["session"] == pd.Timestamp(session)
    assert res.attrs["requested_date"] == calendar.parse_date(date)
    assert "not a KRX session" in res.attrs["session_note"]
    assert fake.panel_calls[0][3] == pd.Timestamp(session)


def test_today_before_the_open_scans_the_previous_session(fake, monkeypatch):
    monkeypatch.setenv("FINDER_NOW", "2025-11-28T08:30+09:00")
    res = scan("2025-11-28", conditions=close > 0)
    assert res.attrs["session"] == pd.Timestamp("2025-11-27")
    assert "not opened" in res.attrs["session_note"]


def test_no_look_ahead_through_scan(fake):
    before = scan("2025-09-15", matches_only=False)
    after_rows = fake.panels["close"].index > pd.Timestamp("2025-09-15")
    rng = np.random.default_rng(3)
    for f in fake.panels.values():
        f.loc[after_rows] = rng.uniform(1, 1e6, (after_rows.sum(), f.shape[1]))
    after = scan("2025-09-15", matches_only=False)
    pd.testing.assert_frame_equal(before, after)
    assert len(before) > 0


def test_universes(fake):
    kosdaq = scan("2025-09-15", universe="kosdaq", conditions=close > 0)
    assert set(kosdaq["market"]) == {"KOSDAQ"}
    assert fake.calls[0] == ("get_stock_list", ["KOSDAQ"])
    codes = list(fake.panels["close"].columns[:3])
    some = scan("2025-09-15", universe=codes + ["999999"], conditions=close > 0)
    assert set(some["code"]) <= set(codes)
    assert some.attrs["missing"] == {"999999": "StockNotFoundError: unknown code"}
    assert "survivorship" not in some.attrs
    picked = scan("2025-09-15", universe=lambda d: codes[:2], conditions=close > 0)
    assert set(picked["code"]) <= set(codes[:2])
    top = scan("2025-09-15", universe=Universe("KOSPI+KOSDAQ", top_value=5), conditions=close > 0)
    assert len(top) <= 5 and len(top.attrs["excluded"]["below_liquidity"]) > 0


def test_top_and_custom_conditions(fake):
    res = scan("2025-09-15", conditions=[close > sma(close, 20), Condition(close > 3000, "pricey")], top=3)
    assert len(res) <= 3
    assert {"close > sma(close, 20)", "close > sma(close, 20)_pass", "pricey", "pricey_pass"} <= set(res.columns)


@pytest.mark.parametrize("kwargs,needle", [
    ({"date": "2099-01-01"}, "future"),
    ({"date": "2025-11-29"}, "future"),        # tomorrow relative to FINDER_NOW
    ({"date": "2025/10/01"}, "2025/10/01"),
    ({"date": 20251001}, "20251001"),
    ({"date": None}, "None"),
    ({"date": "2025-02-30"}, "2025-02-30"),
    ({"conditions": "momentum2"}, "momentum2"),
    ({"conditions": 5}, "5"),
    ({"universe": "KOSPY"}, "KOSPY"),
    ({"universe": "KOSPI+"}, "KOSPI+"),
    ({"universe": ["005930", 5930]}, "5930"),
    ({"universe": 42}, "42"),
    ({"lookback": -5}, "-5"),
    ({"lookback": 220.0}, "220.0"),
    ({"top": -1}, "-1"),
    ({"matches_only": "yes"}, "yes"),
])
def test_bad_input_refused_before_any_request(fake, kwargs, needle):
    args = {"date": "2025-10-01", **kwargs}
    with pytest.raises(InvalidInputError) as err:
        scan(**args)
    assert needle in str(err.value)
    assert fake.calls == []


def test_package_level_access(fake):
    import finder.analysis as fa

    # the function and its module have different names (issue 15): no callable module
    import finder
    import types

    assert isinstance(fa.scan, types.FunctionType) and fa.scan is finder.scan
    assert isinstance(fa.scanner, types.ModuleType) and fa.scanner.scan is fa.scan
    assert fa.scanner.scan_panels is fa.scan_panels
    from finder.analysis.scan import scan as old_path  # imports written before the rename still work

    assert old_path is fa.scan
    res = fa.scan("2025-09-15", conditions=close > 0)
    assert len(res) > 0
