"""Indicators against independent hand-written loops, and panel vs single-stock agreement.

The expected values are computed here with plain Python loops over lists,
written from the textbook formulas, never copied from the implementation.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest

from finder._exceptions import InvalidInputError
from finder.analysis import indicators as ind

# -- reference implementations: plain loops over Python lists ---------------

NAN = float("nan")


def ref_ema(xs, n):
    a = 2 / (n + 1)
    out, prev = [], None
    for x in xs:
        if x != x:  # NaN
            out.append(NAN)
            continue
        prev = x if prev is None else prev + a * (x - prev)
        out.append(prev)
    return out


def ref_dema(xs, n):
    e1 = ref_ema(xs, n)
    e2 = ref_ema(e1, n)
    return [2 * a - b for a, b in zip(e1, e2)]


def ref_tema(xs, n):
    e1 = ref_ema(xs, n)
    e2 = ref_ema(e1, n)
    e3 = ref_ema(e2, n)
    return [3 * a - 3 * b + c for a, b, c in zip(e1, e2, e3)]


def ref_sma(xs, n):
    out = []
    for i in range(len(xs)):
        if i + 1 < n:
            out.append(NAN)
        else:
            out.append(sum(xs[i - n + 1:i + 1]) / n)
    return out


def ref_wilder(xs, n):
    """xs[0] may be NaN (a diff); seed = mean of the first n valid values."""
    out, prev, seen = [], None, []
    for x in xs:
        if x != x:
            out.append(NAN)
            continue
        if prev is None:
            seen.append(x)
            if len(seen) == n:
                prev = sum(seen) / n
                out.append(prev)
            else:
                out.append(NAN)
        else:
            prev = (prev * (n - 1) + x) / n
            out.append(prev)
    return out


def ref_rsi(closes, n, smooth="wilder"):
    gains, losses = [NAN], [NAN]
    for i in range(1, len(closes)):
        d = closes[i] - closes[i - 1]
        gains.append(max(d, 0.0))
        losses.append(max(-d, 0.0))
    if smooth == "wilder":
        g, lo = ref_wilder(gains, n), ref_wilder(losses, n)
    else:
        f = ref_tema if smooth == "tema" else ref_dema
        g, lo = f(gains, n), f(losses, n)
        g = [max(v, 0.0) if v == v else v for v in g]
        lo = [max(v, 0.0) if v == v else v for v in lo]
    out = []
    for a, b in zip(g, lo):
        if a != a or b != b:
            out.append(NAN)
        elif a + b == 0:
            out.append(50.0)
        else:
            out.append(100 - 100 / (1 + a / b) if b > 0 else 100.0)
    return out


def ref_obv(closes, vols):
    out = [0.0]
    for i in range(1, len(closes)):
        d = closes[i] - closes[i - 1]
        s = 1 if d > 0 else (-1 if d < 0 else 0)
        out.append(out[-1] + s * vols[i])
    return out


def ref_atr(h, lo, c, n):
    tr = [NAN]
    for i in range(1, len(c)):
        tr.append(max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])))
    return ref_wilder(tr, n)


def ref_slope(xs, n, normalize=True):
    out = []
    for i in range(len(xs)):
        if i + 1 < n:
            out.append(NAN)
            continue
        y = xs[i - n + 1:i + 1]
        kbar = (n - 1) / 2
        ybar = sum(y) / n
        num = sum((k - kbar) * (y[k] - ybar) for k in range(n))
        den = sum((k - kbar) ** 2 for k in range(n))
        b = num / den
        out.append(b / ybar if normalize else b)
    return out


def ref_volume_ratio(vs, n):
    out = []
    for i in range(len(vs)):
        if i < n:
            out.append(NAN)
        else:
            out.append(vs[i] / (sum(vs[i - n:i]) / n))
    return out


def close_enough(got, want, rel=1e-9, abs_=1e-9):
    got = list(got)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        if w != w:
            assert g != g, f"row {i}: expected NaN, got {g}"
        else:
            assert math.isclose(g, w, rel_tol=rel, abs_tol=abs_), f"row {i}: {g} != {w}"


@pytest.fixture
def prices():
    rng = np.random.default_rng(7)
    c = 1000 * np.exp(np.cumsum(rng.normal(0, 0.02, 80)))
    h = c * (1 + rng.uniform(0, 0.03, 80))
    lo = c * (1 - rng.uniform(0, 0.03, 80))
    v = rng.integers(1_000, 50_000, 80).astype(float)
    return pd.Series(c), pd.Series(h), pd.Series(lo), pd.Series(v)


# -- hand-computed values on tiny inputs -----------------------------------

def test_ema_tiny_by_hand():
    # alpha = 0.5: 1, then 1 + .5(2-1) = 1.5, then 1.5 + .5(3-1.5) = 2.25
    assert ind.ema(pd.Series([1.0, 2.0, 3.0]), 3).tolist() == [1.0, 1.5, 2.25]


def test_rsi_tiny_by_hand():
    # changes +1, -1, +1; n=2 Wilder: G seed (1+0)/2=.5, L seed .5 -> 50;
    # next G=(.5+1)/2=.75, L=(.5+0)/2=.25 -> 75
    assert ind.rsi(pd.Series([1.0, 2.0, 1.0, 2.0]), 2).tolist()[2:] == [50.0, 75.0]


def test_slope_tiny_by_hand():
    # y = 2, 4, 6: slope 2 per bar, mean 4 -> 0.5
    assert ind.slope(pd.Series([2.0, 4.0, 6.0]), 3).iloc[-1] == pytest.approx(0.5)
    assert ind.slope(pd.Series([2.0, 4.0, 6.0]), 3, normalize=False).iloc[-1] == pytest.approx(2.0)


def test_volume_ratio_excludes_today():
    # previous 4 days average 100; today 300 -> 3.0 exactly (an inclusive mean would give 2.14)
    r = ind.volume_ratio(pd.Series([100.0, 100, 100, 100, 300]), 4)
    assert r.iloc[-1] == 3.0
    assert r.iloc[:4].isna().all()


def test_obv_tiny_by_hand():
    assert ind.obv(pd.Series([10.0, 11, 11, 9]), pd.Series([5.0, 7, 3, 2])).tolist() == [0, 7, 7, 5]


def test_true_range_and_atr_tiny_by_hand():
    h = pd.Series([11.0, 12, 13, 12])
    lo = pd.Series([9.0, 10.5, 11, 10])
    c = pd.Series([10.0, 11, 12.5, 10.5])
    # TR: -, max(1.5, 2, .5)=2, max(2, 2, 0)=2, max(2, .5, 2.5)=2.5
    assert ind.true_range(h, lo, c).tolist()[1:] == [2.0, 2.0, 2.5]
    # ATR n=2: seed (2+2)/2 = 2 at bar 2, then (2*1 + 2.5)/2 = 2.25
    a = ind.atr(h, lo, c, 2)
    assert a.isna().tolist() == [True, True, False, False]
    assert a.tolist()[2:] == [2.0, 2.25]
    assert ind.atr(h, lo, c, 2, smoothing="sma").tolist()[2:] == [2.0, 2.25]


def test_macd_tiny_by_hand():
    s = pd.Series([10.0, 11.0, 12.0])
    m = ind.macd(s, fast=1, slow=3, signal=1)
    # EMA1 = x; EMA3 = 10, 10.5, 11.25 -> macd 0, .5, .75; signal span 1 = macd; hist 0
    assert m.macd.tolist() == [0.0, 0.5, 0.75]
    assert m.signal.tolist() == m.macd.tolist()
    assert m.hist.tolist() == [0.0, 0.0, 0.0]


def test_helpers_by_hand():
    a = pd.Series([1.0, 3.0, 4.0, 1.0])
    b = pd.Series([2.0, 2.0, 2.0, 2.0])
    assert ind.crossed_above(a, b).tolist() == [False, True, False, False]
    assert ind.crossed_below(a, b).tolist() == [False, False, False, True]
    assert ind.crossed_above(a, 2).tolist() == [False, True, False, False]
    assert ind.count_true(pd.Series([True, False, True, True]), 3).tolist() == [1, 1, 2, 2]
    assert ind.shift(a).tolist()[1:] == [1.0, 3.0, 4.0]
    assert ind.rolling_sum(a, 2).tolist()[1:] == [4.0, 7.0, 5.0]


# -- against the loop references on longer random data ----------------------

def test_moving_averages_match_loops(prices):
    c = prices[0].tolist()
    for n in (1, 3, 10, 20):
        close_enough(ind.ema(prices[0], n), ref_ema(c, n))
        close_enough(ind.dema(prices[0], n), ref_dema(c, n))
        close_enough(ind.tema(prices[0], n), ref_tema(c, n))
        close_enough(ind.sma(prices[0], n), ref_sma(c, n))


def test_ema_matches_pandas_adjust_false(prices):
    pd.testing.assert_series_equal(ind.ema(prices[0], 12), prices[0].ewm(span=12, adjust=False).mean())


def test_macd_matches_loops(prices):
    c = prices[0].tolist()
    m = ind.macd(prices[0])
    line = [a - b for a, b in zip(ref_ema(c, 12), ref_ema(c, 26))]
    sig = ref_ema(line, 9)
    close_enough(m.macd, line)
    close_enough(m.signal, sig)
    close_enough(m.hist, [a - b for a, b in zip(line, sig)])


@pytest.mark.parametrize("smooth", ["wilder", "tema", "dema"])
def test_rsi_matches_loops(prices, smooth):
    close_enough(ind.rsi(prices[0], 14, smoothing=smooth), ref_rsi(prices[0].tolist(), 14, smooth), rel=1e-8)
    r = ind.rsi(prices[0], 14, smoothing=smooth).dropna()
    assert ((r >= 0) & (r <= 100)).all()


def test_rsi_flat_and_one_way():
    assert ind.rsi(pd.Series([5.0] * 10), 3).iloc[-1] == 50.0
    assert ind.rsi(pd.Series(np.arange(1.0, 11.0)), 3).iloc[-1] == 100.0
    assert ind.rsi(pd.Series(np.arange(10.0, 0.0, -1)), 3).iloc[-1] == 0.0


def test_obv_atr_slope_volume_ratio_match_loops(prices):
    c, h, lo, v = (p.tolist() for p in prices)
    close_enough(ind.obv(prices[0], prices[3]), ref_obv(c, v))
    close_enough(ind.atr(prices[1], prices[2], prices[0], 14), ref_atr(h, lo, c, 14))
    close_enough(ind.slope(prices[0], 20), ref_slope(c, 20), abs_=1e-12)
    close_enough(ind.slope(prices[3], 5, normalize=False), ref_slope(v, 5, False), rel=1e-7, abs_=1e-6)
    close_enough(ind.volume_ratio(prices[3], 5), ref_volume_ratio(v, 5))
    close_enough(ind.volume_ratio(prices[3], 20), ref_volume_ratio(v, 20))


def test_slope_agrees_with_polyfit(prices):
    y = prices[0].to_numpy()[-20:]
    b = np.polyfit(np.arange(20), y, 1)[0]
    assert ind.slope(prices[0], 20).iloc[-1] == pytest.approx(b / y.mean(), rel=1e-9)


# -- panels: no leaks, leading NaNs, gaps -----------------------------------

def _ragged_panel(seed=3, rows=120, cols=12):
    """Columns with different start dates and interior gaps (halts)."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2024-01-01", periods=rows, name="date")
    c = pd.DataFrame(1000 * np.exp(np.cumsum(rng.normal(0, 0.02, (rows, cols)), axis=0)), index=idx,
                     columns=[f"{i:06d}" for i in range(cols)])
    v = pd.DataFrame(rng.integers(1000, 9000, (rows, cols)).astype(float), index=idx, columns=c.columns)
    h = c * (1 + rng.uniform(0, 0.03, (rows, cols)))
    lo = c * (1 - rng.uniform(0, 0.03, (rows, cols)))
    for j in range(cols):
        start = int(rng.integers(0, 40))
        c.iloc[:start, j] = np.nan
        if j % 3 == 0:  # a halt in the middle
            g = int(rng.integers(50, 90))
            c.iloc[g:g + 4, j] = np.nan
        if j % 4 == 1:  # a stock that stops trading before the end
            c.iloc[-5:, j] = np.nan
    for f in (v, h, lo):
        f[c.isna()] = np.nan
    return c, h, lo, v


SINGLE = [
    ("ema", lambda c, h, lo, v: ind.ema(c, 10)),
    ("dema", lambda c, h, lo, v: ind.dema(c, 10)),
    ("tema", lambda c, h, lo, v: ind.tema(c, 20)),
    ("sma", lambda c, h, lo, v: ind.sma(c, 5)),
    ("macd.hist", lambda c, h, lo, v: ind.macd(c).hist),
    ("rsi", lambda c, h, lo, v: ind.rsi(c, 14)),
    ("rsi_tema", lambda c, h, lo, v: ind.rsi(c, 14, smoothing="tema")),
    ("obv", lambda c, h, lo, v: ind.obv(c, v)),
    ("atr", lambda c, h, lo, v: ind.atr(h, lo, c, 14)),
    ("slope", lambda c, h, lo, v: ind.slope(c, 20)),
    ("volume_ratio", lambda c, h, lo, v: ind.volume_ratio(v, 5)),
    ("shift", lambda c, h, lo, v: ind.shift(c, 2)),
    ("crossed_above", lambda c, h, lo, v: ind.crossed_above(ind.tema(c, 20), ind.dema(c, 10))),
]


@pytest.mark.parametrize("name,f", SINGLE, ids=[s[0] for s in SINGLE])
def test_panel_agrees_with_each_stock_alone(name, f):
    c, h, lo, v = _ragged_panel()
    panel = f(c, h, lo, v)
    assert panel.index.equals(c.index) and panel.columns.equals(c.columns)
    for code in c.columns:
        ok = c[code].notna()
        alone = f(c[code][ok], h[code][ok], lo[code][ok], v[code][ok])
        got = panel[code][ok]
        pd.testing.assert_series_equal(got, alone, check_names=False, rtol=1e-9, atol=1e-9)
        if panel[code].dtype != bool:
            assert panel[code][~ok].isna().all(), f"{name}: value on a row the stock did not trade"


def test_ema_seeded_from_each_columns_first_valid_value():
    p = pd.DataFrame({"A": [np.nan, np.nan, 4.0, 6.0], "B": [1.0, 3.0, 5.0, 7.0]})
    e = ind.ema(p, 3)
    assert e["A"].tolist()[2:] == [4.0, 5.0]
    assert e["A"].iloc[:2].isna().all()
    assert e["B"].tolist() == [1.0, 2.0, 3.5, 5.25]


def test_no_leak_between_stocks():
    c, h, lo, v = _ragged_panel()
    before = ind.tema(c, 20)
    c2 = c.copy()
    c2.iloc[:, 0] = c2.iloc[:, 0] * 3 + 7
    after = ind.tema(c2, 20)
    pd.testing.assert_frame_equal(before.iloc[:, 1:], after.iloc[:, 1:])


def test_series_keeps_index_and_name():
    s = pd.Series([1.0, 2.0, 3.0], index=pd.bdate_range("2025-01-01", periods=3), name="005930")
    out = ind.sma(s, 2)
    assert out.index.equals(s.index) and out.name == "005930"


def test_integer_volume_is_accepted():
    v = pd.Series([100, 100, 300], dtype="int64")
    assert ind.volume_ratio(v, 2).iloc[-1] == 3.0


# -- bad input ----------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -1, 2.5, "5", True, None])
def test_bad_window_names_the_value(n):
    with pytest.raises(InvalidInputError, match=repr(n).replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        ind.sma(pd.Series([1.0, 2.0]), n)


def test_bad_inputs():
    with pytest.raises(InvalidInputError, match="list"):
        ind.ema([1.0, 2.0], 3)
    with pytest.raises(InvalidInputError, match="align"):
        ind.obv(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0], index=[5, 6]))
    with pytest.raises(InvalidInputError, match="smoothing"):
        ind.rsi(pd.Series([1.0, 2.0]), 2, smoothing="median")
    with pytest.raises(InvalidInputError, match="n=1"):
        ind.slope(pd.Series([1.0, 2.0]), 1)


def test_docstring_examples_run():
    res = doctest.testmod(ind, extraglobs={"pd": pd}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 10 and res.failed == 0
