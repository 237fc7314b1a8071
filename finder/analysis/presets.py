"""Ready-made screens.  ``momentum`` reproduces the old screener's v1 rules.

Each preset is a function returning a fresh, immutable :class:`Screen`;
every threshold is a keyword parameter, so a variant is one call away and no
call can change another's thresholds (the old system wrote relaxed
thresholds into a global config, which made backtests depend on the order
in which dates ran)::

    from finder.analysis import scan, momentum
    scan("2025-10-01")                                    # the momentum preset, defaults
    scan("2025-10-01", conditions=momentum(min_signals=2, min_value=5e9))

Units of the values shown in a scan (one column per condition): ratios and
fractions are plain numbers (0.012 = 1.2 %); RSI is 0–100; traded values are
KRW.  The scan's ``change_pct`` is the only percent column.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping

from .._exceptions import InvalidInputError
from .conditions import Condition, Screen, close, high, low, volume, value
from .indicators import atr, count_true, crossed_above, dema, ema, macd, obv, rsi, slope, sma, tema, volume_ratio

__all__ = ["momentum", "momentum_strict", "PRESETS", "get_preset", "MOMENTUM_WEIGHTS"]

# Signal weights of the old v1 rules (maximum score 13; the old UI labelled
# picks at score ≥ 10, ≥ 8 and ≥ 6).
MOMENTUM_WEIGHTS: Mapping[str, float] = {
    "cross": 3,
    "volume_surge": 2,
    "macd": 1,
    "rsi_rising": 1,
    "tema_trend": 2,
    "obv_trend": 2,
    "persistence": 2,
}

_PERSISTENCE = ("tema_above_dema", "close_above_tema")


def _num(name: str, v: Any, lo: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise InvalidInputError(f"{name}={v!r} is not a number")
    if lo is not None and v < lo:
        raise InvalidInputError(f"{name}={v!r} is below {lo}")
    return float(v)


def _int(name: str, v: Any, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise InvalidInputError(f"{name}={v!r} is not a whole number ≥ {lo}")
    return int(v)


def momentum(
    *,
    min_value: float = 1e9,
    value_window: int = 20,
    min_close: float = 2_000,
    trend_ema: int = 60,
    overheat_rsi: float = 70,
    overheat_volume: float = 3.0,
    overheat_window: int = 5,
    tema_n: int = 20,
    dema_n: int = 10,
    rsi_n: int = 14,
    surge_volume: float = 2.5,
    surge_window: int = 5,
    surge_volume_long: float = 1.2,
    surge_window_long: int = 20,
    rsi_band_gap: float = 3.0,
    rsi_band_floor: float = 58,
    slope_window: int = 20,
    tema_slope_min: float = 0.0,
    obv_slope_min: float = 0.0,
    persistence: str = "close_above_tema",
    persistence_days: int = 5,
    persistence_min: int = 3,
    weights: Mapping[str, float] | None = None,
    min_signals: int = 3,
    min_bars: int = 21,
) -> Screen:
    """The old screener's v1 momentum rules, with every threshold a parameter.

    Indicators (on the fixed look-back window the scan passes, default 220
    bars, because the EMAs depend on where the window starts):
    TEMA = ``tema(close, tema_n)``, DEMA = ``dema(close, dema_n)``,
    RSI_fast / RSI_slow = ``rsi(close, rsi_n)`` with gains and losses smoothed
    by TEMA / DEMA (the old RSI_TEMA / RSI_DEMA), ``vr(n)`` =
    :func:`~finder.analysis.indicators.volume_ratio`, today's volume over the
    mean of the previous ``n`` days **excluding today**.

    **Hard filters** (fail one and the stock is out):

    ``liquidity``
        mean traded value of the last ``value_window`` (20) bars, today
        included, ≥ ``min_value`` (1 bn KRW).  Value shown: that mean, KRW.
    ``price``
        close ≥ ``min_close`` (2,000 KRW).  Value: close.
    ``trend``
        close ≥ EMA(close, ``trend_ema`` = 60).  Value: close / EMA60.
    ``not_overheated``
        not (RSI_fast ≥ ``overheat_rsi`` (70) and vr(``overheat_window`` = 5)
        ≥ ``overheat_volume`` (3.0), i.e. today's volume at least 3× the mean
        of the previous 5 days).  Value: RSI_fast.  (The old rule compared
        with a 5-day mean that included today, which really meant ≥ 6× the
        previous 4 days' mean.)

    **Scored signals** (weight in brackets; change them with ``weights=``):

    ``cross`` [3]
        TEMA crosses above DEMA today: yesterday TEMA ≤ DEMA, today TEMA > DEMA.
        Value: (TEMA − DEMA) / close.
    ``volume_surge`` [2]
        vr(``surge_window`` = 5) ≥ ``surge_volume`` (2.5: today ≥ 2.5× the
        previous 5 days' mean) and vr(``surge_window_long`` = 20) ≥
        ``surge_volume_long`` (1.2× the previous 20 days' mean).  Value:
        vr(5).  (The old "≥ 2.5 × VOL_MA5" included today, so it really asked
        for ≥ 4× the previous 4 days; any multiplier ≥ 5 could never pass.
        Here the number means what it says.)
    ``macd`` [1]
        MACD(12, 26, 9) line above its signal (histogram > 0).  Value: the
        histogram, KRW.
    ``rsi_rising`` [1]
        RSI_fast > RSI_slow (RSI turning up), or the two within
        ``rsi_band_gap`` (3) points of each other with RSI_fast >
        ``rsi_band_floor`` (58).  Value: RSI_fast − RSI_slow.
    ``tema_trend`` [2]
        slope(TEMA, ``slope_window`` = 20) > ``tema_slope_min`` (0) and close
        > TEMA.  The slope is the least-squares slope per bar divided by the
        window mean (0.004 = rising 0.4 % a day).  Value: that slope.
    ``obv_trend`` [2]
        OBV's 20-bar least-squares slope > ``obv_slope_min`` (0).  Value: the
        slope divided by the mean daily volume of the same 20 bars (OBV's
        fitted daily change as a fraction of a typical day's volume; OBV's own
        level is arbitrary, so it is not used to normalise).
    ``persistence`` [2]
        on at least ``persistence_min`` (3) of the last ``persistence_days``
        (5) bars, today included: close > TEMA20, the preset's moving average
        (``persistence='close_above_tema'``, the default, as the scan spec
        states it), or TEMA > DEMA (``'tema_above_dema'``, the old system's
        ABOVE_CNT5).  Value: that count.  (The old system never counted this
        signal because of a key mismatch; here it counts.)

    A stock **matches** when it passes every filter and at least
    ``min_signals`` (3; the old system used 2 in a bull market and 4 in a
    bear market) signals; results are ranked by score, the sum of the
    weights of the signals passed (maximum 13).  Stocks with fewer than
    ``min_bars`` (21) bars are skipped, as before.

    Example::

        from finder.analysis import scan, momentum
        scan("2025-10-01", conditions=momentum(min_signals=4, weights={"cross": 5}))
    """
    p = dict(
        min_value=_num("min_value", min_value, 0), value_window=_int("value_window", value_window),
        min_close=_num("min_close", min_close, 0), trend_ema=_int("trend_ema", trend_ema),
        overheat_rsi=_num("overheat_rsi", overheat_rsi), overheat_volume=_num("overheat_volume", overheat_volume),
        overheat_window=_int("overheat_window", overheat_window),
        tema_n=_int("tema_n", tema_n), dema_n=_int("dema_n", dema_n), rsi_n=_int("rsi_n", rsi_n),
        surge_volume=_num("surge_volume", surge_volume), surge_window=_int("surge_window", surge_window),
        surge_volume_long=_num("surge_volume_long", surge_volume_long),
        surge_window_long=_int("surge_window_long", surge_window_long),
        rsi_band_gap=_num("rsi_band_gap", rsi_band_gap, 0), rsi_band_floor=_num("rsi_band_floor", rsi_band_floor),
        slope_window=_int("slope_window", slope_window, 2), tema_slope_min=_num("tema_slope_min", tema_slope_min),
        obv_slope_min=_num("obv_slope_min", obv_slope_min),
        persistence=persistence, persistence_days=_int("persistence_days", persistence_days),
        persistence_min=_int("persistence_min", persistence_min, 0),
        min_signals=_int("min_signals", min_signals, 0), min_bars=_int("min_bars", min_bars),
    )
    if persistence not in _PERSISTENCE:
        raise InvalidInputError(f"persistence={persistence!r} is not one of {_PERSISTENCE}")
    w = dict(MOMENTUM_WEIGHTS)
    if weights is not None:
        if not isinstance(weights, Mapping):
            raise InvalidInputError(f"weights={weights!r} is not a dict of signal name -> weight")
        unknown = sorted(set(weights) - set(w))
        if unknown:
            raise InvalidInputError(f"weights has unknown signal names {unknown}; known: {sorted(w)}")
        w.update({k: _num(f"weights[{k!r}]", v) for k, v in weights.items()})
    p["weights"] = w

    t = tema(close, p["tema_n"])
    d = dema(close, p["dema_n"])
    rsi_fast = rsi(close, p["rsi_n"], smoothing="tema")
    rsi_slow = rsi(close, p["rsi_n"], smoothing="dema")
    hist = macd(close).hist
    turnover = sma(value, p["value_window"])
    trend_line = ema(close, p["trend_ema"])
    vr_hot = volume_ratio(volume, p["overheat_window"])
    vr_short = volume_ratio(volume, p["surge_window"])
    vr_long = volume_ratio(volume, p["surge_window_long"])
    tema_slope = slope(t, p["slope_window"])
    obv_slope = slope(obv(close, volume), p["slope_window"], normalize=False) / sma(volume, p["slope_window"])
    above = (t > d) if persistence == "tema_above_dema" else (close > t)
    above_count = count_true(above, p["persistence_days"])

    filters = [
        Condition(turnover >= p["min_value"], "liquidity", value=turnover,
                  description=f"mean traded value of {p['value_window']} bars ≥ {p['min_value']:,.0f} KRW"),
        Condition(close >= p["min_close"], "price", description=f"close ≥ {p['min_close']:,.0f} KRW"),
        Condition(close >= trend_line, "trend", value=close / trend_line,
                  description=f"close ≥ EMA{p['trend_ema']}"),
        Condition(~((rsi_fast >= p["overheat_rsi"]) & (vr_hot >= p["overheat_volume"])), "not_overheated",
                  value=rsi_fast,
                  description=f"not (RSI_TEMA ≥ {p['overheat_rsi']:g} and volume ≥ {p['overheat_volume']:g}× "
                              f"the previous {p['overheat_window']} days' mean)"),
    ]
    signals = [
        Condition(crossed_above(t, d), "cross", value=(t - d) / close, weight=w["cross"],
                  description=f"TEMA{p['tema_n']} crosses above DEMA{p['dema_n']} today"),
        Condition((vr_short >= p["surge_volume"]) & (vr_long >= p["surge_volume_long"]), "volume_surge",
                  value=vr_short, weight=w["volume_surge"],
                  description=f"volume ≥ {p['surge_volume']:g}× previous {p['surge_window']} days' mean and "
                              f"≥ {p['surge_volume_long']:g}× previous {p['surge_window_long']} days' mean"),
        Condition(hist > 0, "macd", value=hist, weight=w["macd"], description="MACD line above its signal"),
        Condition((rsi_fast > rsi_slow)
                  | ((abs(rsi_fast - rsi_slow) <= p["rsi_band_gap"]) & (rsi_fast > p["rsi_band_floor"])),
                  "rsi_rising", value=rsi_fast - rsi_slow, weight=w["rsi_rising"],
                  description=f"RSI_TEMA > RSI_DEMA, or within {p['rsi_band_gap']:g} and RSI_TEMA > "
                              f"{p['rsi_band_floor']:g}"),
        Condition((tema_slope > p["tema_slope_min"]) & (close > t), "tema_trend", value=tema_slope,
                  weight=w["tema_trend"], description=f"TEMA{p['tema_n']} slope > {p['tema_slope_min']:g} and close > TEMA"),
        Condition(obv_slope > p["obv_slope_min"], "obv_trend", weight=w["obv_trend"],
                  description=f"OBV {p['slope_window']}-bar slope > {p['obv_slope_min']:g}"),
        Condition(above_count >= p["persistence_min"], "persistence", weight=w["persistence"],
                  description=f"{persistence} on ≥ {p['persistence_min']} of the last {p['persistence_days']} bars"),
    ]
    return Screen(filters=tuple(filters), signals=tuple(signals), min_signals=p["min_signals"],
                  min_bars=p["min_bars"], name="momentum", params=p,
                  description="the old screener's v1 momentum rules")


def momentum_strict(
    *,
    spread_band: tuple[float, float] = (0.002, 0.015),
    max_chase: float = 0.015,
    atr_band: tuple[float, float] = (0.01, 0.04),
    atr_n: int = 14,
    risk_rsi: float = 80,
    risk_volume: float = 3.0,
    risk_macd_days: int = 3,
    risk_up_days: int = 4,
    max_risk: float = 3,
    **momentum_params: Any,
) -> Screen:
    """``momentum`` plus the old v1's remaining hard filters (5–8), each a parameter.

    ``spread``
        ``spread_band[0] ≤ (TEMA − DEMA) / close ≤ spread_band[1]``
        (0.2 %–1.5 %: a real but not stretched lead of TEMA over DEMA).
    ``not_chasing``
        ``(close − TEMA) / TEMA ≤ max_chase`` (1.5 %).
    ``volatility``
        ``atr_band[0] ≤ ATR / close ≤ atr_band[1]`` (1 %–4 %), ATR = the
        ``atr_n`` (14)-bar simple mean of the true range, as the old code had.
    ``risk``
        risk score < ``max_risk`` (3), the score adding 2 if RSI_TEMA >
        ``risk_rsi`` (80); 2 if volume > ``risk_volume`` (3.0)× the previous 5
        days' mean; 1 unless the MACD histogram rose on each of the last
        ``risk_macd_days`` (3) bars; 1 if at least ``risk_up_days`` (4) of the
        last 5 bars closed up.  Value: the score.
    ``dema_gate``
        DEMA's 20-bar slope > 0 and close > DEMA.

    Other keywords go to :func:`momentum`.
    """
    base = momentum(**momentum_params)
    p = dict(base.params)

    def band(name: str, v: Any) -> tuple[float, float]:
        if not isinstance(v, (tuple, list)) or len(v) != 2:
            raise InvalidInputError(f"{name}={v!r} is not a (low, high) pair")
        lo, hi = _num(f"{name}[0]", v[0]), _num(f"{name}[1]", v[1])
        if lo > hi:
            raise InvalidInputError(f"{name}={v!r} has low > high")
        return lo, hi

    p.update(spread_band=band("spread_band", spread_band), max_chase=_num("max_chase", max_chase),
             atr_band=band("atr_band", atr_band), atr_n=_int("atr_n", atr_n), risk_rsi=_num("risk_rsi", risk_rsi),
             risk_volume=_num("risk_volume", risk_volume), risk_macd_days=_int("risk_macd_days", risk_macd_days),
             risk_up_days=_int("risk_up_days", risk_up_days, 0), max_risk=_num("max_risk", max_risk))

    t = tema(close, p["tema_n"])
    d = dema(close, p["dema_n"])
    rsi_fast = rsi(close, p["rsi_n"], smoothing="tema")
    hist = macd(close).hist
    spread = (t - d) / close
    chase = (close - t) / t
    atr_pct = atr(high, low, close, p["atr_n"], smoothing="sma") / close
    risk = ((rsi_fast > p["risk_rsi"]) * 2
            + (volume_ratio(volume, 5) > p["risk_volume"]) * 2
            + (count_true(hist > hist.shift(), p["risk_macd_days"]) < p["risk_macd_days"]) * 1
            + (count_true(close > close.shift(), 5) >= p["risk_up_days"]) * 1)
    extra = [
        Condition(spread.between(*p["spread_band"]), "spread", value=spread,
                  description=f"{p['spread_band'][0]:g} ≤ (TEMA − DEMA)/close ≤ {p['spread_band'][1]:g}"),
        Condition(chase <= p["max_chase"], "not_chasing", description=f"(close − TEMA)/TEMA ≤ {p['max_chase']:g}"),
        Condition(atr_pct.between(*p["atr_band"]), "volatility", value=atr_pct,
                  description=f"{p['atr_band'][0]:g} ≤ ATR{p['atr_n']}/close ≤ {p['atr_band'][1]:g}"),
        Condition(risk < p["max_risk"], "risk", description=f"risk score < {p['max_risk']:g}"),
        Condition((slope(d, 20) > 0) & (close > d), "dema_gate", value=slope(d, 20),
                  description="DEMA slope > 0 and close > DEMA"),
    ]
    return Screen(filters=base.filters + tuple(extra), signals=base.signals, min_signals=base.min_signals,
                  min_bars=base.min_bars, name="momentum_strict", params=p,
                  description="the old screener's v1 rules with all eight hard filters")


PRESETS: Mapping[str, Callable[..., Screen]] = {
    "momentum": momentum,
    "momentum_strict": momentum_strict,
}


def get_preset(name: str, **params: Any) -> Screen:
    """Build a preset by name (``'momentum'``, ``'momentum_strict'``) with optional threshold overrides."""
    if not isinstance(name, str):
        raise InvalidInputError(f"preset={name!r} ({type(name).__name__}) is not a preset name; known: {sorted(PRESETS)}")
    key = name.strip().lower()
    if key not in PRESETS:
        raise InvalidInputError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
    return PRESETS[key](**params)
