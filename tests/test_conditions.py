"""Conditions, screens and the momentum preset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finder._exceptions import InvalidInputError
from finder.analysis import (
    Bars,
    Condition,
    Screen,
    as_screen,
    close,
    count_true,
    crossed_above,
    dema,
    ema,
    get_preset,
    macd,
    momentum,
    momentum_strict,
    rsi,
    sma,
    tema,
    volume,
    volume_ratio,
)
from finder.analysis import indicators as ind


def make_bars(closes: dict[str, list[float]], volumes: dict[str, list[float]] | None = None) -> Bars:
    n = max(len(v) for v in closes.values())
    idx = pd.RangeIndex(-n + 1, 1, name="bar")
    c = pd.DataFrame({k: [np.nan] * (n - len(v)) + list(v) for k, v in closes.items()}, index=idx)
    if volumes is None:
        vol = pd.DataFrame(1000.0, index=idx, columns=c.columns).where(c.notna())
    else:
        vol = pd.DataFrame({k: [np.nan] * (n - len(v)) + list(v) for k, v in volumes.items()}, index=idx)
    return Bars({"close": c, "volume": vol, "high": c * 1.01, "low": c * 0.99, "open": c})


@pytest.fixture
def bars():
    rng = np.random.default_rng(11)
    cols = {f"{i:06d}": list(1000 * np.exp(np.cumsum(rng.normal(0.001, 0.02, 120)))) for i in range(6)}
    return make_bars(cols)


# -- expressions ---------------------------------------------------------------

def test_expression_reads_like_what_was_written():
    assert repr(close > sma(close, 60)) == "close > sma(close, 60)"
    assert repr((close > 2000) & (volume_ratio(volume, 5) >= 2.5)) == \
        "(close > 2000) & (volume_ratio(volume, 5) >= 2.5)"
    assert repr(macd(close).hist > 0) == "macd(close).hist > 0"


def test_expression_evaluates_like_the_eager_functions(bars):
    got = (close > sma(close, 20)).evaluate(bars)
    want = bars.close > ind.sma(bars.close, 20)
    pd.testing.assert_frame_equal(got, want)
    got = (tema(close, 20) - dema(close, 10)) / close
    pd.testing.assert_frame_equal(got.evaluate(bars),
                                  (ind.tema(bars.close, 20) - ind.dema(bars.close, 10)) / bars.close)


def test_shared_subexpressions_are_computed_once(bars, monkeypatch):
    calls = []
    real = ind._ewm

    def counting(a, alpha):
        calls.append(alpha)
        return real(a, alpha)

    monkeypatch.setattr(ind, "_ewm", counting)
    c1 = Condition(tema(close, 20) > 0, "a")
    c2 = Condition(close > tema(close, n=20), "b")   # same call written differently
    Screen(filters=[c1, c2]).evaluate(bars)
    assert len(calls) == 3  # one TEMA: three EMAs


def test_expression_has_no_truth_value():
    with pytest.raises(TypeError, match="&, \\|"):
        bool(close > 1)
    with pytest.raises(TypeError):
        if (close > 1) and (close < 5):  # noqa: SIM102 - the mistake this guards against
            pass


def test_expression_rejects_data_operands():
    with pytest.raises(InvalidInputError, match="DataFrame"):
        close > pd.DataFrame()  # noqa: B015


# -- conditions ----------------------------------------------------------------

def test_condition_value_and_pass_on_last_bar(bars):
    c = Condition(close > sma(close, 20), "above")
    v, p = c.evaluate(bars)
    assert v.name == "above" and list(v.index) == list(bars.codes)
    pd.testing.assert_series_equal(v, bars.close.iloc[-1].rename("above"))  # value: left side
    want = bars.close.iloc[-1] > ind.sma(bars.close, 20).iloc[-1]
    assert (p == want).all() and p.dtype == bool


def test_combinators(bars):
    a = Condition(close > sma(close, 5), "a")
    b = Condition(close > sma(close, 50), "b")
    pa, pb = a.evaluate(bars)[1], b.evaluate(bars)[1]
    v_and, p_and = (a & b).evaluate(bars)
    assert (p_and == (pa & pb)).all()
    assert (v_and == pa.astype(int) + pb.astype(int)).all()
    assert ((a | b).evaluate(bars)[1] == (pa | pb)).all()
    assert ((~a).evaluate(bars)[1] == ~pa).all()
    assert (a & b).name == "a & b" and (~(a | b)).name == "~(a | b)"
    # expressions and conditions mix
    assert ((close > sma(close, 5)) & b).evaluate(bars)[1].equals(p_and.rename("close > sma(close, 5) & b"))
    assert ((a & b) & a).name == "a & b & a"


def test_weights_names_and_copies_are_independent():
    a = Condition(close > 1, "a")
    b = a.weighted(3).named("b")
    assert (a.weight, a.name) == (1.0, "a") and (b.weight, b.name) == (3.0, "b")
    assert (close > 1).weighted(2).weight == 2.0
    with pytest.raises(InvalidInputError, match="weight"):
        a.weighted("heavy")


def test_plain_function_conditions(bars):
    def rising(b):
        return b.close > b.close.shift(1)

    v, p = Condition(rising).evaluate(bars)
    assert (p == (bars.close.iloc[-1] > bars.close.iloc[-2])).all()

    def ranked(b):  # (value, passed) as Series by code
        chg = b.close.iloc[-1] / b.close.iloc[-2] - 1
        return chg, chg > 0

    v2, p2 = Condition(ranked).evaluate(bars)
    assert (p2 == p).all() and v2.notna().all()
    with pytest.raises(InvalidInputError, match="lambda"):
        Condition(lambda b: b.close > 0)
    assert Condition(lambda b: b.close > 0, "positive").evaluate(bars)[1].all()


def test_nan_never_passes():
    b = make_bars({"A": [1.0, 2.0, 3.0], "B": [np.nan, np.nan, 3.0]})
    _, p = Condition(close > sma(close, 2), "x").evaluate(b)
    assert p.tolist() == [True, False]


# -- screens -------------------------------------------------------------------

def test_screen_scores_and_matches_by_hand():
    b = make_bars({"A": [1.0, 2.0, 3.0, 4.0], "B": [4.0, 3.0, 2.0, 1.0], "C": [1.0, 1.0, 1.0, 5.0]})
    s = Screen(filters=[Condition(close >= 2, "floor")],
               signals=[Condition(close > close.shift(), "up").weighted(3),
                        Condition(close > sma(close, 3), "above").weighted(2),
                        Condition(close > 4.5, "high")],
               min_signals=2)
    t = s.evaluate(b)
    # A: floor ok, up, above (4 > 3) -> 2 signals, score 5, matched
    # B: floor fails (1 < 2)
    # C: floor ok, up, above (5 > 7/3), high -> 3 signals, score 6
    assert t["score"].tolist() == [5.0, 0.0, 6.0]
    assert t["signals"].tolist() == [2, 0, 3]
    assert t["matched"].tolist() == [True, False, True]
    assert t["floor_pass"].tolist() == [True, False, True]


def test_screen_validation():
    a = Condition(close > 1, "a")
    with pytest.raises(InvalidInputError, match="unique"):
        Screen(filters=[a], signals=[a])
    with pytest.raises(InvalidInputError, match="min_signals"):
        Screen(signals=[a], min_signals=2)
    with pytest.raises(InvalidInputError, match="clash"):
        Screen(filters=[a.named("score")])
    with pytest.raises(InvalidInputError, match="not a condition"):
        Screen(filters=[42])


def test_as_screen_forms():
    assert as_screen("momentum").name == "momentum"
    assert as_screen(" Momentum ").name == "momentum"
    assert len(as_screen(close > 1).filters) == 1
    assert len(as_screen([close > 1, Condition(close < 9, "b")]).filters) == 2
    with pytest.raises(InvalidInputError, match="'nope'"):
        as_screen("nope")
    with pytest.raises(InvalidInputError, match="3.5"):
        as_screen(3.5)
    with pytest.raises(InvalidInputError, match="empty"):
        as_screen([])


# -- the momentum preset -------------------------------------------------------

def test_momentum_defaults_are_the_documented_v1_rules():
    s = momentum()
    p = s.params
    assert [c.name for c in s.filters] == ["liquidity", "price", "trend", "not_overheated"]
    assert {c.name: c.weight for c in s.signals} == {
        "cross": 3, "volume_surge": 2, "macd": 1, "rsi_rising": 1, "tema_trend": 2, "obv_trend": 2, "persistence": 2}
    assert (p["min_value"], p["min_close"], p["trend_ema"], p["overheat_rsi"], p["overheat_volume"]) == \
        (1e9, 2000, 60, 70, 3.0)
    assert (s.min_signals, s.min_bars) == (3, 21)
    for c in s.conditions:
        assert c.description, c.name


def test_thresholds_are_per_call_not_global():
    a = momentum(min_signals=2, min_close=5000)
    b = momentum()
    assert (a.min_signals, a.params["min_close"]) == (2, 5000)
    assert (b.min_signals, b.params["min_close"]) == (3, 2000)
    assert get_preset("momentum", min_signals=4).min_signals == 4 and momentum().min_signals == 3
    with pytest.raises(TypeError):
        a.params["min_close"] = 1  # read-only


def test_momentum_rejects_bad_parameters():
    with pytest.raises(InvalidInputError, match="'crosss'"):
        momentum(weights={"crosss": 4})
    with pytest.raises(InvalidInputError, match="min_signals"):
        momentum(min_signals=-1)
    with pytest.raises(InvalidInputError, match="persistence"):
        momentum(persistence="sometimes")
    with pytest.raises(TypeError):
        momentum(not_a_parameter=1)


def _quiet(n=80, level=10_000.0):
    return [level * (1 + 0.001 * ((i % 3) - 1)) for i in range(n)]


def test_volume_surge_means_what_it_says():
    # Previous days trade 1,000 shares; today 2,600 -> 2.6x the previous 5 days' mean
    # (an inclusive mean would make this 2.6/((4+2.6)/5) = 1.97x and fail).
    vols = [1000.0] * 79 + [2600.0]
    b = make_bars({"A": _quiet()}, {"A": vols})
    sig = {c.name: c for c in momentum().signals}
    v, p = sig["volume_surge"].evaluate(b)
    assert v["A"] == pytest.approx(2.6) and bool(p["A"])
    # Multipliers of 5 and more can pass (the old inclusive mean made them impossible).
    b10 = make_bars({"A": _quiet()}, {"A": [1000.0] * 79 + [10_000.0]})
    big = {c.name: c for c in momentum(surge_volume=6).signals}["volume_surge"]
    assert bool(big.evaluate(b10)[1]["A"])


def test_overheat_filter():
    # Ten straight up days push RSI_TEMA over 70; volume 3x the previous 5-day mean -> overheated.
    closes = _quiet(70) + [10_000 * 1.02 ** i for i in range(1, 11)]
    hot = make_bars({"A": closes}, {"A": [1000.0] * 79 + [3000.0]})
    calm = make_bars({"A": closes}, {"A": [1000.0] * 79 + [2900.0]})
    f = {c.name: c for c in momentum().filters}["not_overheated"]
    v, p = f.evaluate(hot)
    assert v["A"] >= 70 and not p["A"]
    assert bool(f.evaluate(calm)[1]["A"])


def test_persistence_counts_and_scores():
    # A steady rise that speeds up at the end (so the close runs above its TEMA);
    # the expected count comes from pandas' own ewm, not from finder.
    closes = [10_000 * 1.003 ** i for i in range(75)]
    closes += [closes[-1] * 1.02 ** k for k in range(1, 6)]
    b = make_bars({"A": closes})
    t = pd.Series(closes).ewm(span=20, adjust=False).mean()
    t2 = t.ewm(span=20, adjust=False).mean()
    t3 = t2.ewm(span=20, adjust=False).mean()
    tema20 = 3 * t - 3 * t2 + t3
    d1 = pd.Series(closes).ewm(span=10, adjust=False).mean()
    dema10 = 2 * d1 - d1.ewm(span=10, adjust=False).mean()
    want = int(sum(pd.Series(closes).iloc[-5:].to_numpy() > tema20.iloc[-5:].to_numpy()))
    old = int(sum(tema20.iloc[-5:].to_numpy() > dema10.iloc[-5:].to_numpy()))
    assert momentum(persistence="tema_above_dema").evaluate(b).loc["A", "persistence"] == old
    s = momentum()
    t = s.evaluate(b)
    assert t.loc["A", "persistence"] == want
    assert bool(t.loc["A", "persistence_pass"]) == (want >= 3)
    passed = [c for c in s.signals if t.loc["A", f"{c.name}_pass"]]
    assert t.loc["A", "score"] == sum(c.weight for c in passed)
    assert t.loc["A", "signals"] == len(passed)
    assert "persistence" in [c.name for c in passed]  # it really counts


def _ref_tema_dema(closes):
    s = pd.Series(closes)
    e = [s.ewm(span=20, adjust=False).mean()]
    for _ in range(2):
        e.append(e[-1].ewm(span=20, adjust=False).mean())
    d1 = s.ewm(span=10, adjust=False).mean()
    return 3 * e[0] - 3 * e[1] + e[2], 2 * d1 - d1.ewm(span=10, adjust=False).mean()


def test_cross_signal_fires_on_the_crossing_bar_only():
    # Walk a random series until TEMA20 (by pandas, independently) crosses above DEMA10.
    rng = np.random.default_rng(5)
    walk = list(10_000 * np.exp(np.cumsum(rng.normal(0, 0.02, 300))))
    t, d = _ref_tema_dema(walk)
    above = (t > d).to_numpy()
    k = next(i for i in range(40, 300) if above[i] and not above[i - 1])
    cross = {c.name: c for c in momentum().signals}["cross"]
    v, p = cross.evaluate(make_bars({"A": walk[:k + 1]}))
    assert bool(p["A"])
    assert v["A"] == pytest.approx((t[k] - d[k]) / walk[k])
    assert not cross.evaluate(make_bars({"A": walk[:k]}))[1]["A"]       # the day before: not yet
    assert not cross.evaluate(make_bars({"A": walk[:k + 2]}))[1]["A"]   # the day after: already above


def test_momentum_strict_adds_the_remaining_v1_filters(bars):
    s = momentum_strict()
    assert [c.name for c in s.filters][4:] == ["spread", "not_chasing", "volatility", "risk", "dema_gate"]
    t = s.evaluate(bars)
    base = momentum().evaluate(bars)
    assert (t["matched"] <= base["matched"]).all()  # stricter never adds matches
    with pytest.raises(InvalidInputError, match="atr_band"):
        momentum_strict(atr_band=(0.05, 0.01))


def test_custom_conditions_get_short_readable_column_names():
    """Issue 14: a name= argument, else a shortened expression (not the full repr with _pass glued on)."""
    from finder.analysis import macd, sma, volume_ratio
    from finder.analysis.conditions import LABEL_LIMIT, as_condition, short_label

    mine = (close > sma(close, 60)) & (volume_ratio(volume, 20) >= 2)
    c = as_condition(mine)
    assert c.name == "close>sma(close,60) & volume_ratio(volume,20)>=2"
    assert c.description == "(close > sma(close, 60)) & (volume_ratio(volume, 20) >= 2)"  # nothing is lost
    assert as_screen(mine, name="trend_surge").conditions[0].name == "trend_surge"
    assert as_screen([mine, close > 0], name="mine").name == "mine"
    with pytest.raises(InvalidInputError):
        as_screen(mine, name=" ")
    # long expressions are cut with an ellipsis; two cut alike are numbered, user names never are
    longer = mine & (macd(close).hist > 0) & (close > sma(close, 120))
    s = Screen(filters=[longer, longer & (close > 1)])
    names = [x.name for x in s.conditions]
    assert all(len(n) <= LABEL_LIMIT + 3 for n in names) and names[0].endswith("…") and names[1].endswith("#2")
    assert short_label((close > 1) | ((close < 5) & (volume > 0))) == "close>1 | (close<5 & volume>0)"
    with pytest.raises(InvalidInputError, match="unique"):
        Screen(filters=[(close > 1).named("x"), (close > 2).named("x")])
