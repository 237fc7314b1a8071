"""Technical indicators: pure, vectorised functions over one stock or a whole panel.

Every function takes either a ``pandas.Series`` (one stock's bars, oldest
first) or a ``pandas.DataFrame`` *panel* (rows: sessions, oldest first;
columns: stock codes) and returns the same shape, index and columns.  A panel
is computed column by column without a Python loop over stocks: the
arithmetic runs on 2-D numpy arrays, so 2,500 stocks cost about as much as a
handful.

Missing bars
------------
A panel has NaN where a stock did not trade (a halt, or before it listed).
Every indicator is computed on **each stock's own bars**, as if its NaN rows
did not exist, and is NaN on those rows.  So a stock halted for a week gets
the same EMA as when its bars are fetched alone, and nothing leaks between
columns.  Concretely, for a panel ``p`` and any code ``c``::

    ema(p, 20)[c].dropna() == ema(p[c].dropna(), 20)

Leading NaNs are the common case (shorter histories); each column's
recursion is seeded from that column's own first valid bar.  For functions
with several inputs (``obv``, ``atr``) a row counts only when every input is
present.  Rows with zero volume are *not* treated as missing here (they are
real rows); the scanner drops them before it computes anything.

Lazy use in conditions
----------------------
Passed a field of :mod:`finder.analysis.conditions` (such as ``close``)
instead of data, each function returns an expression that a scan evaluates
later, so ``close > sma(close, 60)`` is a condition a notebook can hand to
``scan``.

Example::

    >>> import pandas as pd
    >>> from finder.analysis.indicators import ema, sma
    >>> s = pd.Series([1.0, 2.0, 3.0, 4.0])
    >>> ema(s, 3).tolist()           # alpha = 2/(3+1) = 0.5, seeded from 1.0
    [1.0, 1.5, 2.25, 3.125]
    >>> sma(s, 2).tolist()
    [nan, 1.5, 2.5, 3.5]
"""

from __future__ import annotations

import functools
import inspect
import numbers
from typing import Any, Callable, NamedTuple, TypeVar, Union

import numpy as np
import pandas as pd

from .._exceptions import InvalidInputError

__all__ = [
    "MACD",
    "ema",
    "dema",
    "tema",
    "sma",
    "macd",
    "rsi",
    "obv",
    "true_range",
    "atr",
    "slope",
    "volume_ratio",
    "shift",
    "rolling_sum",
    "count_true",
    "crossed_above",
    "crossed_below",
]

Data = Union[pd.Series, pd.DataFrame]
F = TypeVar("F", bound=Callable[..., Any])


class MACD(NamedTuple):
    """What :func:`macd` returns: three objects shaped like its input."""

    macd: Any
    signal: Any
    hist: Any


# --------------------------------------------------------------------------
# The wrapper every public indicator goes through
# --------------------------------------------------------------------------

def _is_expr(x: Any) -> bool:
    # Duck-typed so this module need not import conditions (which imports us).
    return bool(getattr(type(x), "_finder_expr", False))


def _check_window(n: Any, name: str = "n", minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise InvalidInputError(f"{name}={n!r} ({type(n).__name__}) is not a whole number of bars")
    if n < minimum:
        raise InvalidInputError(f"{name}={n!r} is too small; use at least {minimum}")
    return int(n)


def _indicator(n_inputs: int, *, boolean: bool = False, result: type | None = None) -> Callable[[F], F]:
    """Turn ``core(arrays..., **params) -> ndarray`` into a public indicator.

    The core sees float64 arrays of shape (bars, stocks) whose columns are NaN
    only at the top (each stock's bars bottom-aligned); the wrapper does the
    rest: lazy expressions, Series/DataFrame conversion, aligning inputs, and
    compacting away interior gaps so every stock is computed on its own bars.
    """

    def deco(core: F) -> F:
        sig = inspect.signature(core)
        input_names = list(sig.parameters)[:n_inputs]

        @functools.wraps(core)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if any(_is_expr(a) for a in args) or any(_is_expr(v) for v in kwargs.values()):
                from .conditions import _lazy_call  # deferred: conditions imports this module

                return _lazy_call(wrapper, sig, args, kwargs, result)
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as exc:
                raise InvalidInputError(f"{core.__name__}(): {exc}") from None
            bound.apply_defaults()
            inputs = [bound.arguments[k] for k in input_names]
            params = {k: v for k, v in bound.arguments.items() if k not in input_names}
            return _run(core, inputs, input_names, params, boolean, result)

        wrapper.__wrapped_core__ = core  # type: ignore[attr-defined]
        wrapper.__signature__ = sig  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


def _run(core: Callable[..., Any], inputs: list[Any], names: list[str], params: dict[str, Any],
         boolean: bool, result: type | None) -> Any:
    template = next((x for x in inputs if isinstance(x, (pd.Series, pd.DataFrame))), None)
    if template is None:
        raise InvalidInputError(
            f"{core.__name__}(): {names[0]}={type(inputs[0]).__name__} is not a pandas Series or DataFrame")
    is_series = isinstance(template, pd.Series)
    shape = (len(template), 1) if is_series else template.shape
    arrays = []
    for name, x in zip(names, inputs):
        if isinstance(x, (pd.Series, pd.DataFrame)):
            if isinstance(x, pd.Series) != is_series:
                raise InvalidInputError(f"{core.__name__}(): {name} mixes a Series with a DataFrame")
            if not x.index.equals(template.index) or (not is_series and not x.columns.equals(template.columns)):
                raise InvalidInputError(
                    f"{core.__name__}(): {name} does not share the index/columns of {names[0]}; align them first")
            a = np.asarray(x, dtype=np.float64).reshape(shape)
        elif isinstance(x, numbers.Real) and not isinstance(x, bool):
            a = np.full(shape, float(x))  # e.g. crossed_above(rsi, 50)
        else:
            raise InvalidInputError(
                f"{core.__name__}(): {name}={type(x).__name__} is not a pandas Series, DataFrame or number")
        arrays.append(a)

    outs = run_arrays(core, arrays, params, boolean)
    wrapped = []
    for o in outs:
        if is_series:
            wrapped.append(pd.Series(o[:, 0], index=template.index, name=template.name))
        else:
            wrapped.append(pd.DataFrame(o, index=template.index, columns=template.columns))
    if result is not None:
        return result(*wrapped)
    return wrapped[0] if len(wrapped) == 1 else tuple(wrapped)


def run_arrays(core: Callable[..., Any], arrays: list[np.ndarray], params: dict[str, Any],
               boolean: bool = False) -> tuple[np.ndarray, ...]:
    """Run a kernel on aligned float64 arrays (rows: bars, oldest first; columns independent).

    The numeric heart of every public indicator, shared with the whole-range
    backtest engine so both compute with the very same operations: rows where
    any input is NaN are masked, interior gaps are compacted away, and the
    outputs are NaN (False for boolean kernels) on masked rows.
    """
    shape = arrays[0].shape
    valid = np.ones(shape, dtype=bool)
    for a in arrays:
        valid &= ~np.isnan(a)
    arrays = [np.where(valid, a, np.nan) for a in arrays]

    # Interior gaps (a NaN after a column's first valid row): bottom-align
    # each column's valid rows, compute, then put the rows back.  A stable
    # argsort of the mask does this for all columns at once.
    started = np.logical_or.accumulate(valid, axis=0)
    order = None
    if (started & ~valid).any():
        order = np.argsort(valid, axis=0, kind="stable")
        arrays = [np.take_along_axis(a, order, axis=0) for a in arrays]

    with np.errstate(divide="ignore", invalid="ignore"):
        out = core(*arrays, **params)
    outs = tuple(out) if isinstance(out, tuple) else (out,)

    done = []
    for o in outs:
        o = np.asarray(o)
        if order is not None:
            back = np.empty_like(o)
            np.put_along_axis(back, order, o, axis=0)
            o = back
        if boolean:
            o = np.where(valid, o, False).astype(bool)
        else:
            o = np.where(valid, o, np.nan)
        done.append(o)
    return tuple(done)


# --------------------------------------------------------------------------
# numpy kernels: columns are NaN at the top, then valid to the bottom
# --------------------------------------------------------------------------

def _ewm(a: np.ndarray, alpha: float) -> np.ndarray:
    # A loop over bars (≈220), each step vectorised over every stock: faster
    # than pandas' per-column ewm on wide panels, and seeds each column from
    # its own first valid value, which is `ewm(adjust=False)` semantics.
    out = np.empty_like(a)
    prev = np.full(a.shape[1], np.nan)
    for i in range(a.shape[0]):
        x = a[i]
        prev = np.where(np.isnan(prev), x, prev + alpha * (x - prev))
        out[i] = prev
    return out


def _rolling_sum(a: np.ndarray, n: int) -> np.ndarray:
    """Sum of the last n rows; NaN unless all n are valid."""
    valid = ~np.isnan(a)
    c = np.cumsum(np.where(valid, a, 0.0), axis=0)
    k = np.cumsum(valid, axis=0)
    s = c.copy()
    s[n:] -= c[:-n]
    cnt = k.copy()
    cnt[n:] -= k[:-n]
    s[cnt < n] = np.nan
    return s


def _shift(a: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(a, np.nan)
    if k == 0:
        return a.copy()
    if k > 0:
        if k < len(a):
            out[k:] = a[:-k]
    else:
        if -k < len(a):
            out[:k] = a[-k:]
    return out


def _wilder(a: np.ndarray, n: int) -> np.ndarray:
    """Wilder's smoothing, seeded with the simple mean of the first n values."""
    count = np.cumsum(~np.isnan(a), axis=0)
    seed = _rolling_sum(a, n) / n
    out = np.empty_like(a)
    prev = np.full(a.shape[1], np.nan)
    for i in range(a.shape[0]):
        # Before the seed row prev is NaN and stays NaN; at it, take the mean.
        prev = np.where(count[i] == n, seed[i], prev + (a[i] - prev) / n)
        out[i] = prev
    return out


def _smooth(a: np.ndarray, n: int, how: str) -> np.ndarray:
    if how == "wilder":
        return _wilder(a, n)
    if how == "sma":
        return _rolling_sum(a, n) / n
    alpha = 2.0 / (n + 1)
    e1 = _ewm(a, alpha)
    if how == "ema":
        return e1
    e2 = _ewm(e1, alpha)
    if how == "dema":
        return 2 * e1 - e2
    if how == "tema":
        return 3 * e1 - 3 * e2 + _ewm(e2, alpha)
    raise InvalidInputError(f"smoothing={how!r} is not one of 'wilder', 'sma', 'ema', 'dema', 'tema'")


# --------------------------------------------------------------------------
# Moving averages
# --------------------------------------------------------------------------

@_indicator(1)
def ema(x: Data, n: int) -> Data:
    """Exponential moving average with span ``n``.

    ``alpha = 2/(n+1)``; ``ema[0] = x[0]`` (each stock's first bar) and
    ``ema[t] = ema[t-1] + alpha·(x[t] - ema[t-1])``, i.e. pandas'
    ``ewm(span=n, adjust=False).mean()``.  Defined from the first bar on, so
    its value depends on where the window starts: scans fix the window.

    Example::

        >>> ema(pd.Series([1.0, 2.0, 3.0]), 3).tolist()
        [1.0, 1.5, 2.25]
    """
    n = _check_window(n)
    return _ewm(x, 2.0 / (n + 1))


@_indicator(1)
def dema(x: Data, n: int) -> Data:
    """Double EMA: ``2·EMA(x) − EMA(EMA(x))``, all with span ``n``.

    Example::

        >>> dema(pd.Series([1.0, 2.0, 3.0]), 3).round(4).tolist()   # e1=[1,1.5,2.25], e2=[1,1.25,1.75]
        [1.0, 1.75, 2.75]
    """
    n = _check_window(n)
    return _smooth(x, n, "dema")


@_indicator(1)
def tema(x: Data, n: int) -> Data:
    """Triple EMA: ``3·e1 − 3·e2 + e3`` with ``e1 = EMA(x)``, ``e2 = EMA(e1)``, ``e3 = EMA(e2)``, span ``n``.

    Example::

        >>> tema(pd.Series([1.0, 2.0, 3.0]), 3).round(4).tolist()   # e3=[1,1.125,1.4375]
        [1.0, 1.875, 2.9375]
    """
    n = _check_window(n)
    return _smooth(x, n, "tema")


@_indicator(1)
def sma(x: Data, n: int) -> Data:
    """Simple moving average: the mean of the last ``n`` bars, NaN until ``n`` bars exist.

    Example::

        >>> sma(pd.Series([1.0, 2.0, 3.0]), 2).tolist()
        [nan, 1.5, 2.5]
    """
    n = _check_window(n)
    return _rolling_sum(x, n) / n


@_indicator(1, result=MACD)
def macd(close: Data, fast: int = 12, slow: int = 26, signal: int = 9) -> MACD:
    """MACD: ``macd = EMA_fast(close) − EMA_slow(close)``, ``signal = EMA_signal(macd)``, ``hist = macd − signal``.

    Returns ``MACD(macd, signal, hist)`` (a named tuple; unpack it or use
    ``.hist``).  "MACD above its signal" is ``hist > 0``.

    Example::

        m = macd(close)                 # close: a Series or a panel
        above = m.hist > 0              # MACD line above its signal, per bar
    """
    fast, slow, signal = _check_window(fast, "fast"), _check_window(slow, "slow"), _check_window(signal, "signal")
    line = _ewm(close, 2.0 / (fast + 1)) - _ewm(close, 2.0 / (slow + 1))
    sig = _ewm(line, 2.0 / (signal + 1))
    return line, sig, line - sig  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Oscillators and volume
# --------------------------------------------------------------------------

@_indicator(1)
def rsi(close: Data, n: int = 14, smoothing: str = "wilder") -> Data:
    """Relative strength index, 0–100.

    ``d = close[t] − close[t−1]``, ``gain = max(d, 0)``, ``loss = max(−d, 0)``;
    ``RSI = 100 · G / (G + L)`` where G and L are the smoothed gains and
    losses (the same as ``100 − 100/(1 + G/L)``), and 50 when both are 0.

    ``smoothing``:

    * ``'wilder'`` (default): Wilder's; the first value is the simple mean of
      the first ``n`` changes (so RSI starts at the ``n+1``-th bar), then
      ``G[t] = (G[t−1]·(n−1) + gain[t]) / n``.
    * ``'sma'``, ``'ema'``: a rolling mean, an EMA with span ``n``.
    * ``'tema'``, ``'dema'``: the old screener's RSI_TEMA / RSI_DEMA, gains
      and losses smoothed by a TEMA / DEMA with span ``n`` (seeded from the
      second bar).  These can undershoot zero after sharp moves, so G and L
      are clipped at 0 first, which keeps RSI within 0–100.

    Example::

        >>> rsi(pd.Series([1.0, 2.0, 1.0, 2.0]), n=2).tolist()   # G=(1+0)/2 → (0.5+1)/2; L=0.5 → 0.25
        [nan, nan, 50.0, 75.0]
    """
    n = _check_window(n)
    if smoothing not in ("wilder", "sma", "ema", "dema", "tema"):
        raise InvalidInputError(f"smoothing={smoothing!r} is not one of 'wilder', 'sma', 'ema', 'dema', 'tema'")
    d = close - _shift(close, 1)
    gain = np.clip(d, 0.0, None)  # NaN stays NaN
    loss = np.clip(-d, 0.0, None)
    g = np.clip(_smooth(gain, n, smoothing), 0.0, None)
    lo = np.clip(_smooth(loss, n, smoothing), 0.0, None)
    total = g + lo
    # 100 * (g / total), not (100 * g) / total: the ratio is <= 1 exactly, so RSI never exceeds 100.
    return np.where(total > 0, 100.0 * (g / total), np.where(np.isnan(total), np.nan, 50.0))


@_indicator(2)
def obv(close: Data, volume: Data) -> Data:
    """On-balance volume: ``OBV[0] = 0``, ``OBV[t] = OBV[t−1] + sign(close[t] − close[t−1])·volume[t]``.

    Only its changes matter (the starting level is arbitrary), so compare its
    slope, not its level, across stocks.

    Example::

        >>> obv(pd.Series([10.0, 11.0, 11.0, 9.0]), pd.Series([5.0, 7.0, 3.0, 2.0])).tolist()
        [0.0, 7.0, 7.0, 5.0]
    """
    step = np.sign(close - _shift(close, 1)) * volume
    return np.cumsum(np.where(np.isnan(step), 0.0, step), axis=0)


@_indicator(3)
def true_range(high: Data, low: Data, close: Data) -> Data:
    """True range: ``max(high − low, |high − close[t−1]|, |low − close[t−1]|)``; NaN on a stock's first bar.

    Example::

        >>> true_range(pd.Series([11.0, 12.0]), pd.Series([9.0, 10.5]), pd.Series([10.0, 11.0])).tolist()
        [nan, 2.0]
    """
    pc = _shift(close, 1)
    return np.maximum(high - low, np.maximum(np.abs(high - pc), np.abs(low - pc)))


@_indicator(3)
def atr(high: Data, low: Data, close: Data, n: int = 14, smoothing: str = "wilder") -> Data:
    """Average true range in KRW: the :func:`true_range` smoothed over ``n`` bars.

    ``smoothing='wilder'`` (default): the first ATR is the mean of the first
    ``n`` true ranges (bars 2…n+1), then ``ATR[t] = (ATR[t−1]·(n−1) + TR[t]) / n``.
    ``'sma'`` is the old screener's plain n-bar mean.  ``atr / close`` is the
    volatility as a fraction of the price.

    Example::

        atr_pct = atr(high, low, close, 14) / close     # a panel of ATR as a fraction
    """
    n = _check_window(n)
    if smoothing not in ("wilder", "sma", "ema"):
        raise InvalidInputError(f"smoothing={smoothing!r} is not one of 'wilder', 'sma', 'ema'")
    pc = _shift(close, 1)
    tr = np.maximum(high - low, np.maximum(np.abs(high - pc), np.abs(low - pc)))
    return _smooth(tr, n, smoothing)


@_indicator(1)
def slope(x: Data, n: int = 20, normalize: bool = True) -> Data:
    """Least-squares slope of the last ``n`` bars, per bar, divided by their mean.

    Over the window ``y_0 … y_{n−1}`` (oldest first) and ``k = 0 … n−1``:
    ``b = Σ (k − k̄)(y_k − ȳ) / Σ (k − k̄)²``, the slope of the straight line
    fitted to the window; the result is ``b / ȳ``, the fitted daily change
    as a fraction of the window's mean, so stocks at different price levels
    compare (0.01 ≈ rising 1 % of its level a day).  ``normalize=False``
    returns ``b`` itself (for series whose level is arbitrary or can be ≤ 0,
    such as OBV, where only the sign is meaningful).  NaN until ``n`` bars
    exist, and where the mean is 0.

    Example::

        >>> slope(pd.Series([1.0, 2.0, 3.0]), 3).tolist()       # b = 1, mean = 2
        [nan, nan, 0.5]
    """
    n = _check_window(n, minimum=2)
    if not isinstance(normalize, bool):
        raise InvalidInputError(f"normalize={normalize!r} is not True or False")
    t = len(x)
    k = np.arange(n) - (n - 1) / 2.0
    w = k / np.sum(k * k)
    out = np.full_like(x, np.nan)
    if t >= n:
        acc = np.zeros((t - n + 1, x.shape[1]))
        # A loop over the n window offsets, each one vectorised over all bars
        # and stocks; NaNs (too-short histories) propagate as they should.
        for j in range(n):
            acc += w[j] * x[j:t - n + 1 + j]
        out[n - 1:] = acc
    if normalize:
        mean = _rolling_sum(x, n) / n
        out = np.where(mean != 0, out / mean, np.nan)
    return out


@_indicator(1)
def volume_ratio(volume: Data, n: int = 5) -> Data:
    """Today's volume over the mean volume of the previous ``n`` bars, **excluding today**.

    ``volume[t] / mean(volume[t−n] … volume[t−1])``: 3.0 means "three times
    the recent average".  (The old screener divided by a mean that included
    today, so its "≥ k×" meant ``≥ k(n−1)/(n−k)`` × the mean of the other
    ``n−1`` days, and k ≥ n could never pass.)  NaN until ``n+1`` bars
    exist; ``inf`` if the previous bars had no volume.

    Example::

        >>> volume_ratio(pd.Series([10.0, 20.0, 60.0]), 2).tolist()   # 60 / mean(10, 20)
        [nan, nan, 4.0]
    """
    n = _check_window(n)
    prev_mean = _rolling_sum(_shift(volume, 1), n) / n
    return volume / prev_mean


# --------------------------------------------------------------------------
# Helpers for writing conditions (also usable on data directly)
# --------------------------------------------------------------------------

@_indicator(1)
def shift(x: Data, k: int = 1) -> Data:
    """The value ``k`` bars earlier on the stock's own bars (``shift(close)`` is the previous close).

    Example::

        >>> shift(pd.Series([1.0, 2.0, 3.0])).tolist()
        [nan, 1.0, 2.0]
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidInputError(f"k={k!r} is not a whole number of bars")
    return _shift(x, int(k))


@_indicator(1)
def rolling_sum(x: Data, n: int) -> Data:
    """Sum of the last ``n`` bars, NaN until ``n`` bars exist.

    Example::

        >>> rolling_sum(pd.Series([1.0, 2.0, 3.0]), 2).tolist()
        [nan, 3.0, 5.0]
    """
    n = _check_window(n)
    return _rolling_sum(x, n)


@_indicator(1)
def count_true(mask: Data, n: int) -> Data:
    """How many of the last ``n`` bars (today included) a boolean held on.

    Bars before a stock's first bar count as False, so a short history gives
    a smaller count rather than NaN.

    Example::

        >>> count_true(pd.Series([True, False, True, True]), 3).tolist()
        [1.0, 1.0, 2.0, 2.0]
    """
    n = _check_window(n)
    x = np.where(np.isnan(mask), 0.0, mask)
    c = np.cumsum(x, axis=0)
    out = c.copy()
    out[n:] -= c[:-n]
    return out


@_indicator(2, boolean=True)
def crossed_above(a: Data, b: Data) -> Data:
    """True on the bar where ``a`` moves above ``b``: ``a[t−1] ≤ b[t−1]`` and ``a[t] > b[t]``.

    ``b`` may be a number (``crossed_above(rsi(close), 50)``).

    Example::

        >>> crossed_above(pd.Series([1.0, 3.0, 4.0]), pd.Series([2.0, 2.0, 2.0])).tolist()
        [False, True, False]
    """
    return (a > b) & (_shift(a, 1) <= _shift(b, 1))


@_indicator(2, boolean=True)
def crossed_below(a: Data, b: Data) -> Data:
    """True on the bar where ``a`` moves below ``b``: ``a[t−1] ≥ b[t−1]`` and ``a[t] < b[t]``.

    Example::

        >>> crossed_below(pd.Series([3.0, 1.0]), pd.Series([2.0, 2.0])).tolist()
        [False, True]
    """
    return (a < b) & (_shift(a, 1) >= _shift(b, 1))
