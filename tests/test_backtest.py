"""The backtest engine on hand-made panels: every expected number is computed by hand here.

The pure half (``evaluate_trades``, ``equity_curve``, ``summarize``) gets small
frames; the loading half (``backtest``) runs against a fake data layer and a
fake scanner that implement Kiwoom's "adjusted as of base_dt" rule, so the
one-basis guarantee is tested through the real entry point.
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
from finder.analysis.backtest import (DEFAULT_COST_BPS, backtest, equity_curve, evaluate_trades, simulate,
                                      summarize)

D = pd.bdate_range("2025-03-03", periods=12, name="date")  # pure tests need no calendar


def panel(bars: dict[str, list[tuple[float, float, float, float] | None]], index=D) -> dict[str, pd.DataFrame]:
    """{'A': [(o, h, l, c), None, ...]} -> the four one-basis panels (None = did not trade)."""
    out = {f: pd.DataFrame(index=index[: max(len(v) for v in bars.values())], dtype=float)
           for f in ("open", "high", "low", "close")}
    for code, rows in bars.items():
        for k, f in enumerate(("open", "high", "low", "close")):
            out[f][code] = [np.nan if r is None else float(r[k]) for r in rows]
    return out


def flat(closes: list[float | None]) -> list[tuple[float, float, float, float] | None]:
    """Bars whose open, high, low and close are one price (no intraday range)."""
    return [None if c is None else (c, c, c, c) for c in closes]


def picks(*rows: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame({"date": [D[i] for i, _ in rows], "code": [c for _, c in rows]})


def row(trades: pd.DataFrame, code: str, horizon: int, day: int | None = None) -> pd.Series:
    sel = trades[(trades.code == code) & (trades.horizon == horizon)]
    if day is not None:
        sel = sel[sel.date == D[day]]
    assert len(sel) == 1, sel
    return sel.iloc[0]


# --------------------------------------------------------------------------- returns

def test_next_open_entry_and_horizon_exits_by_hand():
    px = panel({"A": [(100, 101, 99, 100), (102, 106, 101, 105), (105, 109, 104, 108),
                      (108, 108, 100, 101), (101, 104, 100, 103)]})
    t = evaluate_trades(picks((0, "A")), px, horizons=(1, 3), cost_bps=0)
    h1, h3 = row(t, "A", 1), row(t, "A", 3)
    # Entry: the open of the session after the pick (102); h=1 exits at that day's close (105).
    assert h1.entry_date == D[1] and h1.entry_price == 102 and h1.exit_date == D[1]
    assert h1["return"] == pytest.approx(105 / 102 - 1)
    # h=3 exits at the close of the 3rd session after the pick (101).
    assert h3.exit_date == D[3] and h3.exit_price == 101 and h3.exit_reason == "horizon"
    assert h3["return"] == pytest.approx(101 / 102 - 1)
    assert h3.held == 3


def test_close_entry_uses_the_pick_days_close():
    px = panel({"A": flat([200, 210, 190, 220])})
    t = evaluate_trades(picks((0, "A")), px, horizons=(1, 3), entry="close", cost_bps=0)
    assert row(t, "A", 1)["return"] == pytest.approx(0.05)  # 210 / 200
    assert row(t, "A", 3)["return"] == pytest.approx(0.10)  # 220 / 200
    assert row(t, "A", 3).entry_date == D[0]


def test_round_trip_cost_is_subtracted_once():
    px = panel({"A": flat([100, 100, 110])})
    t = evaluate_trades(picks((0, "A")), px, horizons=(2,), entry="close", cost_bps=25)
    r = row(t, "A", 2)
    assert r.gross_return == pytest.approx(0.10)
    assert r["return"] == pytest.approx(0.10 - 0.0025)
    # the documented default is 25 bp
    t2 = evaluate_trades(picks((0, "A")), px, horizons=(2,), entry="close")
    assert row(t2, "A", 2)["return"] == pytest.approx(0.10 - DEFAULT_COST_BPS / 10_000)


def test_split_inside_holding_period_one_basis():
    # Raw prices: 10,000 KRW, then a 2:1 split effective on day 2 (raw ~5,000 afterwards).
    # The economic return from the day-1 open (10,000) to the day-3 close (5,500 after the
    # split = 11,000 before) is +10 %.  On one basis (adjusted as of day 3) the pre-split
    # bars are halved, so the engine must see 5,000 -> 5,500.
    raw = [(10000, 10000, 10000, 10000), (10000, 10200, 9900, 10100), (5100, 5250, 5050, 5200),
           (5200, 5600, 5150, 5500)]
    adjusted = [tuple(x / 2 for x in b) if i < 2 else b for i, b in enumerate(raw)]
    t = evaluate_trades(picks((0, "A")), panel({"A": adjusted}), horizons=(1, 3), cost_bps=0)
    assert row(t, "A", 1)["return"] == pytest.approx(10100 / 10000 - 1)
    assert row(t, "A", 3)["return"] == pytest.approx(11000 / 10000 - 1)
    assert row(t, "A", 3).entry_price == 5000


# --------------------------------------------------------------------------- target and stop

def test_take_profit_fills_at_its_level():
    px = panel({"A": [(100, 100, 100, 100), (100, 103, 99, 102), (102, 106, 101, 104), (104, 104, 90, 95)]})
    t = evaluate_trades(picks((0, "A")), px, horizons=(1, 3), take_profit=0.05, stop_loss=0.05, cost_bps=0)
    assert row(t, "A", 1).exit_reason == "horizon"           # day 1: 99..103 touches neither 95 nor 105
    r3 = row(t, "A", 3)
    assert r3.exit_reason == "take_profit" and r3.exit_date == D[2]
    assert r3.exit_price == pytest.approx(105) and r3["return"] == pytest.approx(0.05)


def test_both_levels_touched_on_one_day_assumes_the_stop():
    px = panel({"A": [(100, 100, 100, 100), (100, 101, 99, 100), (100, 111, 89, 100), (100, 100, 100, 100)]})
    t = evaluate_trades(picks((0, "A")), px, horizons=(3,), take_profit=0.10, stop_loss=0.10, cost_bps=0)
    r = row(t, "A", 3)
    assert r.exit_reason == "stop_loss" and r.exit_date == D[2]
    assert r.exit_price == pytest.approx(90) and r["return"] == pytest.approx(-0.10)


def test_stop_on_the_entry_day_counts_for_next_open():
    # Bought at 100 on day 1's open; the same day trades down to 94: stopped at 95.
    px = panel({"A": [(100, 100, 100, 100), (100, 101, 94, 99), (99, 99, 99, 99)]})
    t = evaluate_trades(picks((0, "A")), px, horizons=(2,), stop_loss=0.05, cost_bps=0)
    r = row(t, "A", 2)
    assert (r.exit_reason, r.exit_date, r.exit_price) == ("stop_loss", D[1], pytest.approx(95))


def test_gap_through_the_stop_fills_at_the_open():
    px = panel({"A": [(100, 100, 100, 100), (100, 101, 99, 100), (80, 85, 78, 84), (84, 84, 84, 84)]})
    t = evaluate_trades(picks((0, "A")), px, horizons=(3,), take_profit=0.05, stop_loss=-0.05, cost_bps=0)
    r = row(t, "A", 3)
    assert r.exit_reason == "stop_loss" and r.exit_price == 80 and r["return"] == pytest.approx(-0.20)


def test_close_entry_does_not_check_the_pick_days_range():
    # Bought at day 0's close (100); day 0's low of 80 happened before the purchase.
    px = panel({"A": [(100, 100, 80, 100), (100, 102, 99, 101), (101, 101, 101, 101)]})
    t = evaluate_trades(picks((0, "A")), px, horizons=(2,), entry="close", stop_loss=0.05, cost_bps=0)
    assert row(t, "A", 2).exit_reason == "horizon"
    assert row(t, "A", 2)["return"] == pytest.approx(0.01)


# --------------------------------------------------------------------------- untradable picks

def test_untradable_picks_are_reported_not_dropped():
    px = panel({
        "A": flat([100, 101, 102, 103, 104]),
        "H": flat([50, None, 55, 56, 57]),          # halted on the entry day, trades later
        "X": flat([30, 31, None, None, None]),      # last bar day 1: delisted inside the horizon
        "Z": flat([20, None, None, None, None]),    # never trades after the pick: delisted before entry
        "S": flat([10, 10, None, 12, 12]),          # halted on the horizon day, trades again later
    })
    p = picks((0, "A"), (0, "H"), (0, "X"), (0, "Z"), (0, "S"), (0, "Q"), (4, "A"), (2, "A"))
    t = evaluate_trades(p, px, horizons=(2, 3), entry="next_open", cost_bps=0, delisted={"X", "Z"})
    assert len(t) == len(p) * 2  # one row per pick and horizon, whatever happened
    assert row(t, "H", 2).exit_reason == "untradable" and np.isnan(row(t, "H", 2)["return"])
    assert row(t, "Z", 2).exit_reason == "delisted" and np.isnan(row(t, "Z", 2)["return"])
    x = row(t, "X", 3)  # entered at 31 on day 1, valued at its last close (31) on day 1
    assert x.exit_reason == "delisted" and x.exit_date == D[1] and x["return"] == pytest.approx(0.0)
    s = row(t, "S", 2)  # no bar on day 2: last close (10, day 1); trades again on day 3
    assert s.exit_reason == "halted" and s.exit_date == D[1]
    assert row(t, "Q", 2).exit_reason == "no_data"
    assert row(t, "A", 2, day=4).exit_reason == "no_next_session"
    inc = row(t, "A", 3, day=2)  # entered on day 3, horizon day 5 is past the data
    assert inc.exit_reason == "incomplete" and inc.entry_price == 103 and np.isnan(inc["return"])
    assert row(t, "A", 2, day=2).exit_reason == "horizon"  # day 4 is the last session: still fine
    # Without knowing they were delisted, prices alone say only that they stopped trading.
    t2 = evaluate_trades(p, px, horizons=(2, 3), entry="next_open", cost_bps=0)
    assert row(t2, "X", 3).exit_reason == "halted" and row(t2, "X", 3)["return"] == pytest.approx(0.0)
    assert row(t2, "Z", 2).exit_reason == "untradable"


# --------------------------------------------------------------------------- summary

def test_summary_by_hand():
    px = panel({"A": flat([100, 110, 99]), "B": flat([100, 90, 108]), "C": flat([100, 100, 100]),
                "D": flat([100, 120, 130])})
    t = evaluate_trades(picks((0, "A"), (0, "B"), (0, "C"), (0, "D"), (0, "Q")), px, horizons=(1, 2),
                        entry="close", cost_bps=0)
    s = summarize(t)
    # h=1: +10 %, -10 %, 0 %, +20 %  -> 2 wins of 4; gains .30 / losses .10 = 3
    assert s.loc[1, "count"] == 4 and s.loc[1, "not_traded"] == 1
    assert s.loc[1, "win_rate"] == pytest.approx(0.5)
    assert s.loc[1, "mean"] == pytest.approx(0.05)
    assert s.loc[1, "median"] == pytest.approx(0.05)
    assert s.loc[1, "profit_factor"] == pytest.approx(3.0)
    assert (s.loc[1, "best"], s.loc[1, "worst"]) == (pytest.approx(0.2), pytest.approx(-0.1))
    # h=2: -1 %, +8 %, 0 %, +30 % -> pf = .38 / .01
    assert s.loc[2, "profit_factor"] == pytest.approx(38.0)
    assert s.loc[2, "win_rate"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- equity

def test_equity_overlapping_positions_by_hand():
    # H=2, entry at the close.  Day-0 cohort buys A (100 -> 110 -> 121), day-1 cohort buys B
    # (50 -> 40 -> 60).  Two sleeves of 0.5:
    #   sleeve 0: 0.5, 0.55, 0.605 (A sold day 2; day-2 cohort has no pick: cash) 0.605, 0.605
    #   sleeve 1: 0.5 (cash), 0.5, 0.40, 0.60 (B sold day 3), 0.60
    # equity:     1.0, 1.05, 1.005, 1.205, 1.205.   (Compounding the two +21 % and +20 % trades
    # as if each used all the capital would claim 1.452.)
    px = panel({"A": flat([100, 110, 121, 121, 121]), "B": flat([50, 50, 40, 60, 60])})
    res = simulate(picks((0, "A"), (1, "B")), px, sessions=D[:3], horizons=(2,), entry="close", cost_bps=0)
    eq = res.equity
    assert list(eq.index) == list(D[:5])
    assert eq["equity"].to_numpy() == pytest.approx([1.0, 1.05, 1.005, 1.205, 1.205])
    assert eq["positions"].tolist() == [1, 2, 2, 1, 0]
    assert eq["drawdown"].to_numpy() == pytest.approx([0, 0, 1.005 / 1.05 - 1, 0, 0])
    assert res.trades["return"].to_numpy() == pytest.approx([0.21, 0.20])


def test_equity_charges_costs_on_entry_and_ends_at_the_trade_return():
    # The same as above with 100 bp: A's path is .99, 1.09, 1.20; B's .99, .79, 1.19.
    px = panel({"A": flat([100, 110, 121, 121, 121]), "B": flat([50, 50, 40, 60, 60])})
    eq = equity_curve(evaluate_trades(picks((0, "A"), (1, "B")), px, horizons=(2,), entry="close",
                                      cost_bps=100), px["close"], D[:3], 2, cost_bps=100)
    assert eq["equity"].to_numpy() == pytest.approx([0.995, 1.04, 0.995, 1.195, 1.195])


def test_equity_next_open_reuses_the_sleeve_each_day():
    # H=1, next open: the day-0 cohort holds A (+10 %) and B (-10 %) on day 1 -> 1.0;
    # the day-1 cohort holds A on day 2 (110 -> 121) -> 1.1.  Day 2's cohort would enter on day 3.
    px = panel({"A": [(100,) * 4, (100, 110, 100, 110), (110, 121, 110, 121), (121,) * 4],
                "B": [(100,) * 4, (100, 100, 90, 90), (90,) * 4, (90,) * 4]})
    res = simulate(picks((0, "A"), (0, "B"), (1, "A")), px, sessions=D[:3], horizons=(1,), cost_bps=0)
    assert res.equity["equity"].to_numpy() == pytest.approx([1.0, 1.0, 1.1, 1.1])


def test_equity_keeps_untradable_shares_in_cash():
    # Two picks, one halted on the entry day: half the sleeve stays in cash.
    px = panel({"A": flat([100, 100, 120]), "H": flat([10, None, 10])})
    res = simulate(picks((0, "A"), (0, "H")), px, sessions=D[:1], horizons=(2,), entry="next_open", cost_bps=0)
    # sleeve 1 (no cohort) is cash 0.5; sleeve 0 holds half A (+20 %), half cash
    assert res.equity["equity"].iloc[-1] == pytest.approx(0.5 + 0.5 * (0.5 * 1.2 + 0.5 * 1.0))


def test_result_summary_and_repr():
    px = panel({"A": flat([100, 110, 121])})
    res = simulate(picks((0, "A")), px, sessions=D[:1], horizons=(1, 2), entry="close", cost_bps=0)
    assert res.summary().loc[2, "mean"] == pytest.approx(0.21)
    assert res.equity_horizon == 2
    assert "BacktestResult" in repr(res)
    with pytest.raises(InvalidInputError, match="horizon=7"):
        res.equity_for(7)


# --------------------------------------------------------------------------- the loader, with fakes

SPLIT_DAY = 3  # index into the fake market's sessions


class FakeMarket:
    """A fake finder.data / finder.analysis.scan pair with Kiwoom's as-of adjustment.

    Stock 'A' has a 2:1 split effective on ``sessions[SPLIT_DAY]``; stock 'B' has none.
    """

    def __init__(self, sessions: pd.DatetimeIndex):
        self.sessions = sessions
        n = len(sessions)
        self.raw = {
            "A": [(10000.0, 10100.0, 9900.0, 10000.0)] * SPLIT_DAY
            + [(5000.0, 5600.0, 4950.0, 5500.0)] * (n - SPLIT_DAY),
            "B": [(3000.0 + 10 * i, 3020.0 + 10 * i, 2990.0 + 10 * i, 3010.0 + 10 * i) for i in range(n)],
        }
        self.panel_calls: list[tuple] = []
        self.scan_calls: list[pd.Timestamp] = []

    def frame(self, code: str, base_dt) -> pd.DataFrame:
        base = pd.Timestamp(base_dt)
        rows = [r for d, r in zip(self.sessions, self.raw[code]) if d <= base]
        idx = self.sessions[: len(rows)]
        df = pd.DataFrame(rows, index=idx, columns=["open", "high", "low", "close"])
        if code == "A" and base >= self.sessions[SPLIT_DAY]:  # adjusted as of base_dt
            df.loc[df.index < self.sessions[SPLIT_DAY]] /= 2
        return df

    def get_panel(self, codes, count=220, base_dt=None, field="close", adjusted=True, progress=None):
        self.panel_calls.append((tuple(codes), count, pd.Timestamp(base_dt), adjusted))
        fields = [field] if isinstance(field, str) else list(field)
        frames = {c: self.frame(c, base_dt).iloc[-count:] for c in codes if c in self.raw}
        out = {f: pd.DataFrame({c: fr[f] for c, fr in frames.items()}) for f in fields}
        for f in fields:
            out[f].attrs["missing"] = [c for c in codes if c not in self.raw]
        return out[field] if isinstance(field, str) else out

    def scan(self, date, universe="KOSPI+KOSDAQ", conditions="momentum", lookback=220, top=None):
        d = pd.Timestamp(date)
        self.scan_calls.append(d)
        if d != self.sessions[1]:
            return pd.DataFrame(columns=["code", "name", "close", "score"])
        # The scan sees prices adjusted as of its own day: A closes at 10,000 before the split.
        close = self.frame("A", d)["close"].iloc[-1]
        out = pd.DataFrame({"code": ["A", "B", "Q"], "name": ["Alpha", "Beta", "Gone"],
                            "close": [close, 3020.0, 1.0], "score": [9, 7, 5]})
        return out.head(top) if top else out


@pytest.fixture
def fake_market(monkeypatch):
    monkeypatch.setenv("FINDER_NOW", "2025-12-01T21:00+09:00")
    sessions = calendar.sessions_in_range("2025-09-01", "2025-09-30")
    m = FakeMarket(sessions)
    data_mod = types.ModuleType("finder.data")
    data_mod.get_panel = m.get_panel
    data_mod.get_stock_list = lambda market="KOSPI": pd.DataFrame({"code": ["A", "B"], "name": ["Alpha", "Beta"]})
    import finder.analysis.scanner as scanner

    monkeypatch.setitem(sys.modules, "finder.data", data_mod)
    monkeypatch.setattr(finder, "data", data_mod, raising=False)
    monkeypatch.setattr(scanner, "scan", m.scan)  # the per-session path calls scanner.scan(d)
    return m


def test_backtest_split_between_entry_and_exit_is_not_a_return(fake_market):
    s = fake_market.sessions
    res = backtest("momentum", s[0], s[2], universe="KOSPI", horizons=(1, 3), cost_bps=0, progress=False,
                   engine="session")
    # scanned every session of the range, in order
    assert fake_market.scan_calls == list(s[:3])
    # one evaluation panel, adjusted as of the last session the trades need (s[2] + 3 sessions)
    assert len(fake_market.panel_calls) == 1
    codes, count, base, adjusted = fake_market.panel_calls[0]
    assert base == s[5] and adjusted and set(codes) == {"A", "B", "Q"} and count >= 6
    a3 = row(res.trades, "A", 3)
    # Picked on s[1]; bought on s[2]'s open: raw 10,000 (5,000 as of s[5]); sold at s[4]'s close,
    # raw 5,500 after the split (= 11,000 before it): +10 %.  Mixing bases would say -45 %.
    assert a3.entry_date == s[2] and a3.exit_date == s[4]
    assert a3["return"] == pytest.approx(0.10)
    b1 = res.trades[(res.trades.code == "B") & (res.trades.horizon == 1)].iloc[0]
    assert b1["return"] == pytest.approx((3010 + 20) / (3000 + 20) - 1)
    q = res.trades[res.trades.code == "Q"]
    assert len(q) == 2 and set(q.exit_reason) == {"no_data"}
    assert res.params["missing"] == ["Q"]
    assert res.trades.loc[res.trades.code == "A", "name"].iloc[0] == "Alpha"


def test_backtest_max_picks_keeps_the_top(fake_market):
    s = fake_market.sessions
    res = backtest("momentum", s[1], s[1], horizons=(1,), max_picks=1, progress=False, engine="session")
    assert res.trades.code.tolist() == ["A"]
    assert res.picks["rank"].tolist() == [1]


def test_backtest_near_the_data_end_reports_incomplete(fake_market, monkeypatch):
    s = fake_market.sessions
    # "Now" is the evening of s[2]: the horizon sessions do not exist yet.
    monkeypatch.setenv("FINDER_NOW", f"{s[2].date()}T21:00+09:00")
    res = backtest("momentum", s[0], s[2], horizons=(1, 5), progress=False, engine="session")
    assert fake_market.panel_calls[0][2] == s[2]
    a = res.trades[res.trades.code == "A"].set_index("horizon")
    assert a.loc[1, "exit_reason"] == "horizon" and a.loc[5, "exit_reason"] == "incomplete"


@pytest.mark.parametrize("kwargs, needle", [
    (dict(start="2025-09-10", end="2025-09-01"), "start='2025-09-10'"),
    (dict(start="2025-09-01", end="2099-01-01"), "end='2099-01-01'"),
    (dict(start="2025-09-01", end="2025-13-01"), "end='2025-13-01'"),
    (dict(start="yesterday", end="2025-09-05"), "start='yesterday'"),
    (dict(start="2025-09-06", end="2025-09-07"), "no XKRX session"),
    (dict(start="2025-09-01", end="2025-09-05", horizons=(0, 5)), "horizons contains 0"),
    (dict(start="2025-09-01", end="2025-09-05", horizons=()), "horizons=()"),
    (dict(start="2025-09-01", end="2025-09-05", horizons="5"), "horizons='5'"),
    (dict(start="2025-09-01", end="2025-09-05", horizons=(1.5,)), "horizons contains 1.5"),
    (dict(start="2025-09-01", end="2025-09-05", entry="open"), "entry='open'"),
    (dict(start="2025-09-01", end="2025-09-05", take_profit=-0.1), "take_profit=-0.1"),
    (dict(start="2025-09-01", end="2025-09-05", stop_loss=5), "stop_loss=5"),
    (dict(start="2025-09-01", end="2025-09-05", cost_bps="25"), "cost_bps='25'"),
    (dict(start="2025-09-01", end="2025-09-05", max_picks=0), "max_picks=0"),
    (dict(start="2025-09-01", end="2025-09-05", conditions="momentun"), "'momentun'"),
    (dict(start="2025-09-01", end="2025-09-05", conditions=None), "conditions=None"),
    (dict(start="2025-09-01", end="2025-09-05", equity_horizon=3), "equity_horizon=3"),
    (dict(start=None, end="2025-09-05"), "start=None"),
    (dict(start="2025-09-01", end="2025-09-05", universe=None), "universe=None"),
    (dict(start="2025-09-01", end="2025-09-05", lookback=5), "lookback=5"),
])
def test_bad_input_is_refused_before_any_request(fake_market, kwargs, needle):
    with pytest.raises(InvalidInputError) as exc:
        backtest(**kwargs, progress=False)
    assert needle in str(exc.value)
    assert fake_market.scan_calls == [] and fake_market.panel_calls == []
