"""Conditions: small, named, composable rules over indicator panels.

Three ways to write one, from shortest to most flexible:

1. **An expression** over the bar fields ``open_, high, low, close, volume,
   value`` and the indicator functions, which return expressions when given
   fields::

       from finder.analysis import close, volume, sma, volume_ratio
       above_trend = close > sma(close, 60)                 # a boolean expression
       surge = (volume_ratio(volume, 20) >= 2).named("surge")

2. **A plain function** of the :class:`Bars` a scan hands it (each field a
   dates × codes DataFrame), returning a boolean panel, a boolean Series by
   code, or a ``(value, passed)`` pair::

       def near_high(bars):
           return bars.close >= 0.95 * bars.high.rolling(250, min_periods=1).max()
       near = Condition(near_high, value=lambda b: b.close / b.high.rolling(250, min_periods=1).max())

3. **A Condition** object with an explicit name, value and weight.

Combine with ``&``, ``|`` and ``~`` (never ``and``/``or``/``not``, which
Python cannot overload), weight with ``.weighted(w)``, and put them in a
:class:`Screen` (hard filters + weighted signals + ``min_signals``)::

    screen = Screen(filters=[close >= 2_000],
                    signals=[above_trend.weighted(2), surge.weighted(1)],
                    min_signals=1, name="my screen")
    picks = finder.analysis.scan("2025-10-01", conditions=screen)

Every condition yields, per stock, a **value** (a number shown in the scan's
output: the left side of a comparison, or what ``value=`` says) and a
**pass** flag, both on the scan session's bar.

Expressions are evaluated once per scan and memoised by their structure, so
``tema(close, 20)`` used by three conditions is computed once.  Nothing in
this module holds global state: a Screen is an immutable value, so results do
not depend on what ran before.
"""

from __future__ import annotations

import inspect
import math
import numbers
import operator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._exceptions import InvalidInputError
from . import indicators as ind

__all__ = [
    "Expr",
    "Field",
    "Bars",
    "Condition",
    "Screen",
    "as_condition",
    "as_screen",
    "open_",
    "high",
    "low",
    "close",
    "volume",
    "value",
    "FIELDS",
]

FIELDS = ("open", "high", "low", "close", "volume", "value")


# --------------------------------------------------------------------------
# Bars: what conditions are evaluated on
# --------------------------------------------------------------------------

class Bars:
    """The bars a scan evaluates conditions on.

    ``bars.close`` (or ``bars["close"]``) is a DataFrame, rows = bars (oldest
    first), columns = codes.  In a scan, each column holds that stock's own
    last ``lookback`` bars bottom-aligned, so the **last row is the scan
    session** for every stock and ``shift`` means "previous trading bar".

    ``value`` (traded value, KRW) falls back to ``close × volume`` where the
    data has no traded value.

    Build one yourself to try a condition on a panel::

        bars = Bars({"close": close_panel, "volume": volume_panel})
        (close > sma(close, 60)).evaluate(bars).iloc[-1]
    """

    def __init__(self, frames: Mapping[str, pd.DataFrame], *, session: pd.Timestamp | None = None) -> None:
        if not isinstance(frames, Mapping) or not frames:
            raise InvalidInputError(f"Bars needs a non-empty dict of field -> DataFrame, not {type(frames).__name__}")
        first = None
        for k, f in frames.items():
            if not isinstance(f, pd.DataFrame):
                raise InvalidInputError(f"Bars field {k!r} is a {type(f).__name__}, not a DataFrame")
            if first is None:
                first = f
            elif not (f.index.equals(first.index) and f.columns.equals(first.columns)):
                raise InvalidInputError(f"Bars field {k!r} does not share the index/columns of the other fields")
        self._frames = dict(frames)
        self._template: pd.DataFrame = first  # type: ignore[assignment]
        self._memo: dict[Any, Any] = {}
        self.session = session

    @property
    def codes(self) -> pd.Index:
        return self._template.columns

    @property
    def index(self) -> pd.Index:
        return self._template.index

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._frames)

    def field(self, name: str) -> pd.DataFrame:
        if name in self._frames and name != "value":
            return self._frames[name]
        if name == "value":
            key = ("field", "value")
            if key not in self._memo:
                self._memo[key] = self._value()
            return self._memo[key]
        raise InvalidInputError(
            f"a condition needs the field {name!r}, which these bars lack (they have {sorted(self._frames)})")

    def _value(self) -> pd.DataFrame:
        have_cv = "close" in self._frames and "volume" in self._frames
        if "value" in self._frames:
            v = self._frames["value"]
            return v.where(v.notna(), self._frames["close"] * self._frames["volume"]) if have_cv else v
        if have_cv:
            return self._frames["close"] * self._frames["volume"]
        raise InvalidInputError("a condition needs 'value' (traded value), and these bars have neither it nor close and volume")

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.field(name)

    def __getattr__(self, name: str) -> pd.DataFrame:
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "open_":
            name = "open"
        return self.field(name)

    def eval(self, x: Any) -> Any:
        """Evaluate an expression, a plain function of the bars, or pass data through."""
        if isinstance(x, Expr):
            return x.evaluate(self)
        if callable(x) and not isinstance(x, (pd.DataFrame, pd.Series)):
            return x(self)
        return x

    def __repr__(self) -> str:
        return f"Bars({len(self.index)} bars × {len(self.codes)} codes, fields={sorted(self._frames)})"


def _as_bars(x: Any) -> Bars:
    if isinstance(x, Bars):
        return x
    if isinstance(x, Mapping):
        return Bars(x)
    raise InvalidInputError(f"cannot evaluate a condition on a {type(x).__name__}; pass Bars or a dict of panels")


# --------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------

def _key(x: Any) -> Any:
    if isinstance(x, Expr):
        return x._key()
    try:
        hash(x)
        return ("c", type(x).__name__, x)
    except TypeError:
        return ("r", repr(x))


def _text(x: Any, parens: bool = False) -> str:
    if isinstance(x, Expr):
        t = repr(x)
        return f"({t})" if parens and isinstance(x, _BinOp) else t
    return repr(x)


class Expr:
    """A lazy computation over :class:`Bars`: a field, an indicator call or an operator.

    Supports ``+ - * /``, unary ``-``, ``abs()``, comparisons ``> >= < <=``
    (giving boolean expressions), and ``& | ~`` between boolean expressions.
    ``==`` is deliberately not overloaded (expressions stay hashable); use
    ``.eq(x)``.  ``.named(name)`` and ``.weighted(w)`` make a
    :class:`Condition`.
    """

    _finder_expr = True
    __array_ufunc__ = None  # numpy scalars on the left defer to our reflected operators
    __slots__ = ()

    def _key(self) -> Any:
        raise NotImplementedError

    def _compute(self, bars: Bars) -> Any:
        raise NotImplementedError

    def evaluate(self, bars: Bars | Mapping[str, pd.DataFrame]) -> Any:
        """The expression's panel on ``bars`` (memoised per Bars object)."""
        bars = _as_bars(bars)
        k = self._key()
        memo = bars._memo
        if k not in memo:
            memo[k] = self._compute(bars)
        return memo[k]

    def __bool__(self) -> bool:
        raise TypeError("an expression has no truth value: combine conditions with &, | and ~ "
                        "(not and/or/not), and write a < b < c as (a < b) & (b < c)")

    # arithmetic
    def __add__(self, o: Any) -> Expr: return _BinOp("+", self, o)
    def __radd__(self, o: Any) -> Expr: return _BinOp("+", o, self)
    def __sub__(self, o: Any) -> Expr: return _BinOp("-", self, o)
    def __rsub__(self, o: Any) -> Expr: return _BinOp("-", o, self)
    def __mul__(self, o: Any) -> Expr: return _BinOp("*", self, o)
    def __rmul__(self, o: Any) -> Expr: return _BinOp("*", o, self)
    def __truediv__(self, o: Any) -> Expr: return _BinOp("/", self, o)
    def __rtruediv__(self, o: Any) -> Expr: return _BinOp("/", o, self)
    def __neg__(self) -> Expr: return _BinOp("*", -1, self)
    def __abs__(self) -> Expr: return _Unary("abs", self)

    # comparisons
    def __gt__(self, o: Any) -> Expr: return _BinOp(">", self, o)
    def __ge__(self, o: Any) -> Expr: return _BinOp(">=", self, o)
    def __lt__(self, o: Any) -> Expr: return _BinOp("<", self, o)
    def __le__(self, o: Any) -> Expr: return _BinOp("<=", self, o)

    def eq(self, o: Any) -> Expr:
        return _BinOp("==", self, o)

    __hash__ = object.__hash__

    @property
    def is_indicator(self) -> bool:
        """True for indicator calls (``sma(close, 60)``), False for fields and operators."""
        return False

    # logic
    def __and__(self, o: Any) -> Any:
        if isinstance(o, Condition) or callable(o) and not isinstance(o, Expr):
            return Condition(self) & o
        return _BinOp("&", self, o)

    def __rand__(self, o: Any) -> Any:
        return _BinOp("&", o, self)

    def __or__(self, o: Any) -> Any:
        if isinstance(o, Condition) or callable(o) and not isinstance(o, Expr):
            return Condition(self) | o
        return _BinOp("|", self, o)

    def __ror__(self, o: Any) -> Any:
        return _BinOp("|", o, self)

    def __invert__(self) -> Expr:
        return _Unary("~", self)

    # conveniences
    def shift(self, k: int = 1) -> Expr:
        """The value ``k`` bars earlier (``close.shift()`` is the previous close)."""
        return ind.shift(self, k)

    def between(self, lo: Any, hi: Any) -> Expr:
        """``lo <= self <= hi``."""
        return (self >= lo) & (self <= hi)

    def crossed_above(self, other: Any) -> Expr:
        return ind.crossed_above(self, other)

    def crossed_below(self, other: Any) -> Expr:
        return ind.crossed_below(self, other)

    def count_true(self, n: int) -> Expr:
        """On how many of the last ``n`` bars this boolean held."""
        return ind.count_true(self, n)

    def named(self, name: str) -> Condition:
        return Condition(self, name)

    def weighted(self, weight: float) -> Condition:
        return Condition(self, weight=weight)


class Field(Expr):
    """A bar field by name: ``Field('close')``; exported as ``close``, ``open_``, ...."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if name not in FIELDS:
            raise InvalidInputError(f"field {name!r} is not one of {FIELDS}")
        self.name = name

    def _key(self) -> Any:
        return ("field", self.name)

    def _compute(self, bars: Bars) -> Any:
        return bars.field(self.name)

    def __repr__(self) -> str:
        return self.name


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
    "&": operator.and_, "|": operator.or_,
}
_COMPARISONS = (">", ">=", "<", "<=", "==")


class _BinOp(Expr):
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: Any, right: Any) -> None:
        for side in (left, right):
            if not isinstance(side, Expr) and not (isinstance(side, numbers.Real) and not isinstance(side, bool)) \
                    and not (op in ("&", "|") and isinstance(side, bool)):
                raise InvalidInputError(f"cannot combine an expression with a {type(side).__name__} using {op!r}; "
                                        "use numbers, fields and indicator expressions")
        self.op, self.left, self.right = op, left, right

    def _key(self) -> Any:
        return ("op", self.op, _key(self.left), _key(self.right))

    def _compute(self, bars: Bars) -> Any:
        lv = self.left.evaluate(bars) if isinstance(self.left, Expr) else self.left
        rv = self.right.evaluate(bars) if isinstance(self.right, Expr) else self.right
        if self.op in ("&", "|"):
            lv, rv = _as_bool(lv), _as_bool(rv)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _OPS[self.op](lv, rv)

    @property
    def is_comparison(self) -> bool:
        return self.op in _COMPARISONS

    def __repr__(self) -> str:
        return f"{_text(self.left, True)} {self.op} {_text(self.right, True)}"


def _as_bool(x: Any) -> Any:
    # NaN (no data) counts as "does not hold" in & | ~.
    if isinstance(x, (pd.DataFrame, pd.Series)) and not _all_bool(x):
        return x.fillna(0).astype(bool)
    return x


def _all_bool(x: pd.DataFrame | pd.Series) -> bool:
    if isinstance(x, pd.Series):
        return x.dtype == bool
    return all(dt == bool for dt in x.dtypes)


class _Unary(Expr):
    __slots__ = ("op", "arg")

    def __init__(self, op: str, arg: Expr) -> None:
        self.op, self.arg = op, arg

    def _key(self) -> Any:
        return ("unary", self.op, self.arg._key())

    def _compute(self, bars: Bars) -> Any:
        v = self.arg.evaluate(bars)
        if self.op == "~":
            return ~_as_bool(v)
        return v.abs()

    def __repr__(self) -> str:
        return f"~{_text(self.arg, True)}" if self.op == "~" else f"abs({self.arg!r})"


class _Call(Expr):
    """An indicator applied to expressions, e.g. ``sma(close, 60)``."""

    __slots__ = ("fn", "args", "kwargs", "canon")

    def __init__(self, fn: Callable[..., Any], sig: inspect.Signature, args: tuple, kwargs: dict) -> None:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInputError(f"{fn.__name__}(): {exc}") from None
        bound.apply_defaults()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        # The key uses the bound arguments, so sma(close, 60) and
        # sma(close, n=60) share one computation.
        self.canon = tuple((k, _key(v)) for k, v in bound.arguments.items())

    def _key(self) -> Any:
        return ("call", self.fn.__module__, self.fn.__qualname__, self.canon)

    @property
    def is_indicator(self) -> bool:
        return True

    def _compute(self, bars: Bars) -> Any:
        args = [a.evaluate(bars) if isinstance(a, Expr) else a for a in self.args]
        kwargs = {k: (v.evaluate(bars) if isinstance(v, Expr) else v) for k, v in self.kwargs.items()}
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        parts = [_text(a) for a in self.args] + [f"{k}={_text(v)}" for k, v in self.kwargs.items()]
        return f"{self.fn.__name__}({', '.join(parts)})"


class _Item(Expr):
    """One output of a multi-output indicator: ``macd(close).hist``."""

    __slots__ = ("call", "i", "label")

    def __init__(self, call: _Call, i: int, label: str) -> None:
        self.call, self.i, self.label = call, i, label

    def _key(self) -> Any:
        return ("item", self.call._key(), self.i)

    @property
    def is_indicator(self) -> bool:
        return True

    def _compute(self, bars: Bars) -> Any:
        return self.call.evaluate(bars)[self.i]

    def __repr__(self) -> str:
        return f"{self.call!r}.{self.label}"


def _lazy_call(fn: Callable[..., Any], sig: inspect.Signature, args: tuple, kwargs: dict,
               result: type | None) -> Any:
    call = _Call(fn, sig, args, kwargs)
    if result is None:
        return call
    return result(*(_Item(call, i, name) for i, name in enumerate(result._fields)))  # type: ignore[attr-defined]


open_ = Field("open")
high = Field("high")
low = Field("low")
close = Field("close")
volume = Field("volume")
value = Field("value")


def _walk(x: Any) -> Iterable[Expr]:
    """Every sub-expression of ``x`` (for pre-computing indicators)."""
    if isinstance(x, _BinOp):
        yield x
        for side in (x.left, x.right):
            yield from _walk(side)
    elif isinstance(x, _Unary):
        yield x
        yield from _walk(x.arg)
    elif isinstance(x, _Item):
        yield x
        yield from _walk(x.call)
    elif isinstance(x, _Call):
        yield x
        for a in list(x.args) + list(x.kwargs.values()):
            yield from _walk(a)
    elif isinstance(x, Expr):
        yield x


# --------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------

def _check_weight(w: Any) -> float:
    if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(float(w)):
        raise InvalidInputError(f"weight={w!r} is not a finite number")
    return float(w)


def _last(x: Any, codes: pd.Index, what: str) -> pd.Series:
    """Reduce a panel to the session's row (the last row), indexed by code."""
    if isinstance(x, pd.DataFrame):
        return x.iloc[-1] if len(x) else pd.Series(np.nan, index=codes)
    if isinstance(x, pd.Series):
        if x.index.equals(codes) or set(x.index) >= set(codes):
            return x.reindex(codes)
        raise InvalidInputError(f"{what} returned a Series not indexed by the scanned codes")
    if isinstance(x, (numbers.Real, np.bool_)):
        return pd.Series(x, index=codes)
    raise InvalidInputError(f"{what} returned a {type(x).__name__}; return a boolean DataFrame, "
                            "a Series by code, or a (value, passed) pair")


class Condition:
    """A named rule with, per stock, a value and a pass flag on the scan session.

    ``test`` is a boolean expression, or a function ``f(bars)`` returning a
    boolean panel, a boolean Series by code, or a ``(value, passed)`` pair.
    ``value`` (optional) is what the scan shows for it: an expression or a
    function of the bars; by default the left side of a comparison
    (``rsi(close) >= 70`` shows the RSI), else 1.0/0.0.  ``weight`` counts in
    a Screen's score when the condition is a signal.

    Example::

        cheap = Condition(close < 10_000, "cheap")
        trend = (close > sma(close, 60)).named("trend").weighted(2)
        both = cheap & trend          # also a Condition; ~cheap negates
    """

    def __init__(self, test: Any, name: str | None = None, *, value: Any = None, weight: float = 1.0,
                 description: str = "") -> None:
        if isinstance(test, Condition):
            name = name if name is not None else test.name
            value = value if value is not None else test.value
            description = description or test.description
            test = test.test
        if not isinstance(test, Expr) and not callable(test):
            raise InvalidInputError(f"a condition's test must be an expression or a function of the bars, "
                                    f"not {type(test).__name__} ({test!r})")
        auto = name is None
        if name is None:
            if isinstance(test, Expr):
                name = short_label(test)
                description = description or repr(test)
            else:
                name = getattr(test, "__name__", "")
                if not name or name == "<lambda>":
                    raise InvalidInputError("a condition made from a lambda needs a name: Condition(f, 'my name')")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"condition name={name!r} is not a non-empty string")
        if value is not None and not isinstance(value, Expr) and not callable(value):
            raise InvalidInputError(f"value={value!r} must be an expression or a function of the bars")
        self.test = test
        self.name = name
        self.value = value
        self.weight = _check_weight(weight)
        self.description = description
        self.auto_name = auto

    # building
    def _copy(self, **changes: Any) -> Condition:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def named(self, name: str) -> Condition:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"condition name={name!r} is not a non-empty string")
        return self._copy(name=name, auto_name=False)

    def weighted(self, weight: float) -> Condition:
        return self._copy(weight=_check_weight(weight))

    def describe(self, text: str) -> Condition:
        return self._copy(description=text)

    def __and__(self, other: Any) -> Condition:
        return _All([self, as_condition(other)])

    def __rand__(self, other: Any) -> Condition:
        return _All([as_condition(other), self])

    def __or__(self, other: Any) -> Condition:
        return _Any([self, as_condition(other)])

    def __ror__(self, other: Any) -> Condition:
        return _Any([as_condition(other), self])

    def __invert__(self) -> Condition:
        return _Not(self)

    def __bool__(self) -> bool:
        raise TypeError("a Condition has no truth value: combine conditions with &, | and ~")

    # evaluating
    def evaluate(self, bars: Bars | Mapping[str, pd.DataFrame]) -> tuple[pd.Series, pd.Series]:
        """``(value, passed)`` on the last bar, each a Series indexed by code."""
        bars = _as_bars(bars)
        codes = bars.codes
        out = bars.eval(self.test)
        if isinstance(out, tuple):
            if len(out) != 2:
                raise InvalidInputError(f"condition {self.name!r} returned a tuple of {len(out)}; "
                                        "return (value, passed)")
            val, passed = out
        else:
            passed, val = out, None
        passed_last = _last(passed, codes, f"condition {self.name!r}")
        passed_last = passed_last.astype(object).where(passed_last.notna(), False).astype(bool)
        if self.value is not None:
            val = bars.eval(self.value)
        elif val is None:
            if isinstance(self.test, _BinOp) and self.test.is_comparison and isinstance(self.test.left, Expr):
                val = self.test.left.evaluate(bars)
            else:
                val = passed_last.astype(float)
        val_last = pd.to_numeric(_last(val, codes, f"value of {self.name!r}"), errors="coerce").astype(float)
        return val_last.rename(self.name), passed_last.rename(self.name)

    def expressions(self) -> list[Expr]:
        """The expressions this condition evaluates (for pre-computing them)."""
        out: list[Expr] = []
        for part in (self.test, self.value):
            out.extend(_walk(part))
        return out

    def __repr__(self) -> str:
        w = f", weight={self.weight:g}" if self.weight != 1 else ""
        return f"Condition({self.name!r}{w})"


class _All(Condition):
    def __init__(self, parts: Sequence[Condition]) -> None:
        flat: list[Condition] = []
        for p in parts:
            # Flatten a & (b & c), but keep a named or weighted group whole.
            flat.extend(p.parts if type(p) is _All and p.weight == 1 and p.name == _join(p.parts, " & ") else [p])
        self.parts = flat
        self.test = None
        self.value = None
        self.weight = 1.0
        self.description = ""
        self.auto_name = all(getattr(p, "auto_name", False) for p in flat)
        self.name = _join(flat, " & ")

    def evaluate(self, bars: Any) -> tuple[pd.Series, pd.Series]:
        """Passes when every part passes; the value is how many parts pass."""
        bars = _as_bars(bars)
        flags = [p.evaluate(bars)[1] for p in self.parts]
        n = sum(f.astype(int) for f in flags)
        return n.astype(float).rename(self.name), (n == len(flags)).rename(self.name)

    def expressions(self) -> list[Expr]:
        return [e for p in self.parts for e in p.expressions()]


class _Any(_All):
    def __init__(self, parts: Sequence[Condition]) -> None:
        flat: list[Condition] = []
        for p in parts:
            flat.extend(p.parts if type(p) is _Any and p.weight == 1 and p.name == _join(p.parts, " | ") else [p])
        super().__init__([])
        self.parts = flat
        self.name = _join(flat, " | ")

    def evaluate(self, bars: Any) -> tuple[pd.Series, pd.Series]:
        """Passes when any part passes; the value is how many parts pass."""
        bars = _as_bars(bars)
        flags = [p.evaluate(bars)[1] for p in self.parts]
        n = sum(f.astype(int) for f in flags)
        return n.astype(float).rename(self.name), (n > 0).rename(self.name)


class _Not(Condition):
    def __init__(self, part: Condition) -> None:
        self.part = part
        self.test = None
        self.value = None
        self.weight = 1.0
        self.description = ""
        self.auto_name = getattr(part, "auto_name", False)
        self.name = f"~{_wrap(part)}"

    def evaluate(self, bars: Any) -> tuple[pd.Series, pd.Series]:
        """Passes when the part fails; the value is the part's value."""
        v, p = self.part.evaluate(bars)
        return v.rename(self.name), (~p).rename(self.name)

    def expressions(self) -> list[Expr]:
        return self.part.expressions()


def _join(parts: Sequence[Condition], sep: str) -> str:
    return sep.join(_wrap(p) for p in parts)


def _wrap(c: Condition) -> str:
    return f"({c.name})" if any(s in c.name for s in (" & ", " | ")) else c.name


def as_condition(x: Any) -> Condition:
    """A Condition from a Condition, a boolean expression, a function of the bars, or a ``(condition, weight)`` pair."""
    if isinstance(x, Condition):
        return x
    if isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], numbers.Real) and not isinstance(x[1], bool):
        return as_condition(x[0]).weighted(x[1])
    if isinstance(x, Expr) or callable(x):
        return Condition(x)
    raise InvalidInputError(f"{x!r} ({type(x).__name__}) is not a condition: use an expression such as "
                            "close > sma(close, 60), a function of the bars, a Condition, or a preset name")


# --------------------------------------------------------------------------
# Screens
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Screen:
    """A complete rule set: hard filters, weighted signals, and how many signals must pass.

    A stock **matches** when it passes every filter and at least
    ``min_signals`` of the signals; its ``score`` is the sum of the weights
    of the signals it passes (filters carry no weight).  Stocks with fewer
    than ``min_bars`` bars up to the session are not evaluated.

    ``params`` records the thresholds the screen was built with (presets fill
    it; the scan copies it into ``result.attrs``).  A Screen is immutable:
    build a new one to change anything.

    Example::

        Screen(filters=[close >= 2_000], signals=[(close > sma(close, 60), 2)], min_signals=1)
    """

    filters: tuple = ()
    signals: tuple = ()
    min_signals: int = 0
    min_bars: int = 1
    name: str = "custom"
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        def conds(items: Any, what: str) -> tuple[Condition, ...]:
            if isinstance(items, (Condition, Expr)) or callable(items):
                items = [items]
            if not isinstance(items, (list, tuple)):
                raise InvalidInputError(f"Screen {what}={items!r} is not a list of conditions")
            return tuple(as_condition(i) for i in items)

        filters = conds(self.filters, "filters")
        signals = conds(self.signals, "signals")
        filters, signals = _unique_auto_names(filters, signals)
        names = [c.name for c in filters + signals]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InvalidInputError(f"condition names must be unique within a screen; repeated: {dup}. "
                                    "Give them names with .named('...')")
        clash = sorted(set(names) & set(RESERVED_COLUMNS))
        if clash:
            raise InvalidInputError(f"condition names {clash} clash with the scan's own columns; rename them")
        for label in ("min_signals", "min_bars"):
            v = getattr(self, label)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise InvalidInputError(f"{label}={v!r} is not a whole number ≥ 0")
        if self.min_signals > len(signals):
            raise InvalidInputError(f"min_signals={self.min_signals} exceeds the {len(signals)} signals of the screen")
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(f"Screen name={self.name!r} is not a non-empty string")
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "signals", signals)
        object.__setattr__(self, "min_signals", int(self.min_signals))
        object.__setattr__(self, "min_bars", max(int(self.min_bars), 1))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.filters + self.signals

    def expressions(self) -> list[Expr]:
        """Every distinct expression the screen evaluates, indicators first (used to time them apart)."""
        seen: dict[Any, Expr] = {}
        for c in self.conditions:
            for e in c.expressions():
                seen.setdefault(e._key(), e)
        calls = [e for e in seen.values() if e.is_indicator]
        return calls + [e for e in seen.values() if not e.is_indicator]

    def evaluate(self, bars: Bars | Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Per code: each condition's value and ``<name>_pass``, then ``filters_ok``, ``signals``, ``score``, ``matched``."""
        bars = _as_bars(bars)
        codes = bars.codes
        cols: dict[str, pd.Series] = {}
        filters_ok = pd.Series(True, index=codes)
        n_signals = pd.Series(0, index=codes)
        score = pd.Series(0.0, index=codes)
        for c in self.filters:
            v, p = c.evaluate(bars)
            cols[c.name], cols[f"{c.name}_pass"] = v, p
            filters_ok &= p
        for c in self.signals:
            v, p = c.evaluate(bars)
            cols[c.name], cols[f"{c.name}_pass"] = v, p
            n_signals += p.astype(int)
            score += p.astype(float) * c.weight
        out = pd.DataFrame(cols, index=codes)
        out["filters_ok"] = filters_ok
        out["signals"] = n_signals
        out["score"] = score
        out["matched"] = filters_ok & (n_signals >= self.min_signals)
        return out

    def __repr__(self) -> str:
        return (f"Screen({self.name!r}, filters={[c.name for c in self.filters]}, "
                f"signals={[(c.name, c.weight) for c in self.signals]}, min_signals={self.min_signals})")


def _unique_auto_names(filters: tuple, signals: tuple) -> tuple[tuple, tuple]:
    """Shortened automatic names can coincide: number the later ones (user-given names are left alone)."""
    seen: dict[str, int] = {}
    out = []
    for c in filters + signals:
        n = seen.get(c.name, 0)
        seen[c.name] = n + 1
        if n and getattr(c, "auto_name", False):
            c = c._copy(name=f"{c.name} #{n + 1}", auto_name=True)
        out.append(c)
    return tuple(out[:len(filters)]), tuple(out[len(filters):])


LABEL_LIMIT = 48


def short_label(e: Any, limit: int = LABEL_LIMIT) -> str:
    """A short, readable name for an expression: the scan's column name when none is given.

    Operators and arguments are written without spaces, ``&``/``|`` keep
    theirs and drop the brackets around comparisons; longer than ``limit``
    characters, the label is cut with an ellipsis (the full expression stays
    in the condition's ``description``).

    Example::

        >>> short_label((close > sma(close, 60)) & (volume_ratio(volume, 20) >= 2))
        'close>sma(close,60) & volume_ratio(volume,20)>=2'
    """
    text = _label(e)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _label(e: Any, inner: bool = False) -> str:
    if isinstance(e, _BinOp):
        if e.op in ("&", "|"):
            # a & b & c needs no brackets; a & (b | c) does
            sides = [_label(x, not (isinstance(x, _BinOp) and x.op == e.op)) for x in (e.left, e.right)]
            text = f"{sides[0]} {e.op} {sides[1]}"
            return f"({text})" if inner else text
        text = f"{_label(e.left, True)}{e.op}{_label(e.right, True)}"
        return f"({text})" if inner and not e.is_comparison else text
    if isinstance(e, _Unary):
        return f"~{_label(e.arg, True)}" if e.op == "~" else f"abs({_label(e.arg)})"
    if isinstance(e, _Item):
        return f"{_label(e.call)}.{e.label}"
    if isinstance(e, _Call):
        parts = [_label(a) for a in e.args] + [f"{k}={_label(v)}" for k, v in e.kwargs.items()]
        return f"{e.fn.__name__}({','.join(parts)})"
    if isinstance(e, float) and e.is_integer():
        return f"{e:g}" if abs(e) < 1e15 else repr(e)
    return repr(e)


# The scan's own output columns; condition names may not take them.
RESERVED_COLUMNS = ("code", "name", "market", "close", "change_pct", "value", "score", "signals",
                    "matched", "filters_ok", "bars", "rank")


def as_screen(x: Any, name: str | None = None) -> Screen:
    """A Screen from a preset name, a Screen, one condition, or a list of conditions (all must pass).

    A list (or a single condition) becomes a screen of hard filters; use a
    :class:`Screen` with ``signals`` and ``min_signals`` for weighted scoring.
    ``name``: the column name of a single condition (instead of its shortened
    expression), or the name of a screen made from several.
    """
    screen = _as_screen(x)
    if name is None:
        return screen
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"name={name!r} is not a non-empty string")
    if len(screen.conditions) == 1 and not isinstance(x, (str, Screen)):
        c = screen.conditions[0].named(name)
        return Screen(filters=(c,) if screen.filters else (), signals=(c,) if screen.signals else (),
                      min_signals=screen.min_signals, min_bars=screen.min_bars, name=name, params=screen.params)
    return Screen(filters=screen.filters, signals=screen.signals, min_signals=screen.min_signals,
                  min_bars=screen.min_bars, name=name, params=screen.params, description=screen.description)


def _as_screen(x: Any) -> Screen:
    if isinstance(x, Screen):
        return x
    if isinstance(x, str):
        from .presets import get_preset

        return get_preset(x)
    if isinstance(x, (Condition, Expr)) or (callable(x) and not isinstance(x, type)):
        return Screen(filters=(as_condition(x),))
    if isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], numbers.Real) and not isinstance(x[1], bool):
        return Screen(filters=(as_condition(x),))
    if isinstance(x, (list, tuple)):
        if not x:
            raise InvalidInputError("conditions=[] is empty; give at least one condition or a preset name")
        return Screen(filters=tuple(as_condition(i) for i in x))
    raise InvalidInputError(f"conditions={x!r} ({type(x).__name__}) is not a preset name, a Screen, "
                            "a condition or a list of conditions")
