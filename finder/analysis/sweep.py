"""Parameter sweeps: many backtests of one screen's variants, cheaply and honestly.

Notebook example::

    >>> import finder
    >>> sw = finder.sweep("momentum", {"min_signals": [2, 3, 4], "surge_volume": [2.0, 2.5, 3.0],
    ...                                "take_profit": [None, 0.05]},
    ...                   "2025-03-04", "2025-10-31", universe="KOSPI", horizons=(5,))
    >>> sw                          # the overfitting verdict first, then the best rows
    >>> sw.table                    # one row per configuration: its parameters and its statistics
    >>> sw.best("sharpe")           # the row of the best configuration
    >>> sw.heatmap("min_signals", "surge_volume", "sharpe")
    >>> sw.backtest(3)              # the full BacktestResult of configuration 3

What a sweep guarantees
-----------------------
* **Each row is the standalone backtest.**  Configuration ``i`` of the table
  equals ``finder.backtest(screen(**its screen parameters), start, end, ...,
  its trade parameters)``: the same picks from the same engine (the
  whole-range engine, :func:`~finder.analysis.backtest.prepare_backtest`,
  where ``backtest(engine="auto")`` uses it; else each session scanned on bars
  adjusted as of that session, as ``scan`` does), the same evaluation prices
  (one basis: as of the last session the trades need), the same trades,
  equity and statistics, bit for bit (tested; trades and equity come from
  the same numpy core as ``evaluate_trades``/``equity_curve``,
  :mod:`finder.analysis._trades`).
* **Data is loaded once, shared work is done once.**  The range is loaded once
  (``prepare_backtest``; 0 requests when the cache is warm) and its
  indicators are memoised across screens.  On the per-session path each
  session's bars are loaded once and every screen scans the *same* prepared
  bars, whose expression memo computes an indicator that several screens share
  (the same function, inputs and window) once per session.  Trade parameters
  (``take_profit``, ``stop_loss``, ``max_picks``, ``horizons``, ``entry``,
  ``cost_bps``) reuse the scans of their screen.  The evaluation prices are
  loaded once per distinct last session.  Configurations are evaluated grouped
  by pick set (then put back in the grid's order): the aligned price panels and
  what every trade rule shares (pick positions, columns, entry windows) are
  built once per pick set, and only the last two pick sets' are kept in memory.
* **Honest about the best.**  ``result.overfit`` holds the deflated Sharpe
  ratio of the best configuration, the PBO by CSCV and, with
  ``walk_forward=(train, test)``, the chained out-of-sample result
  (:mod:`finder.analysis._overfit` has the formulas); ``repr`` says it first.
* **Scale-out without a data layer on the workers.**  With ``client=`` (a
  ``distributed.Client``) the driver scans (it owns the cache), then scatters
  the picks and the price panels once; the workers only evaluate
  configurations (pure functions: no Kiwoom, no credentials, no cache
  folder).  Dask reruns the tasks of a worker that dies.  The table is the
  same as a local run's, bit for bit (tested).

What it does not do: choose the screen's parameters for you, or correct for
configurations you tried in earlier sweeps.  Each row's statistics are those of
the configuration's equity horizon (the longest of its ``horizons``).
"""

from __future__ import annotations

import itertools
import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import calendar
from .._exceptions import InvalidInputError
from . import _overfit
from ._trades import equity_aligned, evaluate_aligned
from .backtest import (
    DEFAULT_COST_BPS,
    DEFAULT_HORIZONS,
    PRICE_FIELDS,
    BacktestResult,
    _check_params,
    _check_positive_int,
    _evaluation_end,
    _known_delisted,
    _align_prices,
    _tqdm,
)
from .stats import STAT_COLUMNS, result_stats

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["sweep", "sweep_panels", "SweepResult", "TRADE_PARAMS", "expand_grid"]

log = logging.getLogger(__name__)

TRADE_PARAMS = ("horizons", "entry", "take_profit", "stop_loss", "cost_bps", "max_picks")
MAX_CONFIGS = 100_000


# --------------------------------------------------------------------------
# configurations (pure)
# --------------------------------------------------------------------------

def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in the grid's key order (the last key varies fastest)."""
    if not isinstance(grid, Mapping):
        raise InvalidInputError(f"grid={grid!r} is not a dict of parameter name -> list of values")
    keys = list(grid)
    values = []
    for k in keys:
        if not isinstance(k, str):
            raise InvalidInputError(f"grid key {k!r} is not a parameter name")
        v = grid[k]
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) == 0:
            raise InvalidInputError(f"grid[{k!r}]={v!r} is not a non-empty list of values")
        values.append(list(v))
    n = math.prod(len(v) for v in values)
    if n > MAX_CONFIGS:
        raise InvalidInputError(f"the grid has {n:,} configurations; more than {MAX_CONFIGS:,} is surely a mistake")
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _screen_factory(screen: Any) -> tuple[Callable[..., Any], str | None]:
    """A function kwargs -> Screen, and the preset name when ``screen`` is one."""
    from .conditions import Screen, as_screen
    from .presets import get_preset

    if isinstance(screen, str):
        get_preset(screen)  # refuses unknown names now
        return (lambda **kw: get_preset(screen, **kw)), screen
    if callable(screen) and not isinstance(screen, Screen) and not hasattr(screen, "_finder_expr"):
        return screen, None
    fixed = as_screen(screen)
    return (lambda **kw: fixed if not kw else _no_params(kw)), None


def _no_params(kw: Mapping[str, Any]) -> Any:
    raise InvalidInputError(f"the screen is fixed, so the grid cannot set {sorted(kw)}; pass a preset name or a "
                            "function that builds a Screen from keyword parameters")


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


@dataclass(frozen=True)
class _Config:
    """One configuration: its screen key and its (checked) trade parameters."""

    i: int
    params: tuple
    screen_key: tuple
    horizons: tuple
    entry: str
    take_profit: float | None
    stop_loss: float | None
    cost_bps: float
    max_picks: int | None


def _configs(grid_rows: list[dict[str, Any]], defaults: dict[str, Any]) -> list[_Config]:
    out = []
    for i, row in enumerate(grid_rows):
        trade = {**defaults, **{k: v for k, v in row.items() if k in TRADE_PARAMS}}
        h, entry, tp, sl, cost = _check_params(trade["horizons"], trade["entry"], trade["take_profit"],
                                               trade["stop_loss"], trade["cost_bps"])
        mp = _check_positive_int(trade["max_picks"], "max_picks", allow_none=True)
        skey = tuple((k, _freeze(v)) for k, v in row.items() if k not in TRADE_PARAMS)
        out.append(_Config(i, tuple((k, _freeze(v)) for k, v in row.items()), skey, h, entry, tp, sl, cost, mp))
    return out


# --------------------------------------------------------------------------
# one session, many screens: the scan of scan_panels on shared prepared bars
# --------------------------------------------------------------------------

class _SessionScans:
    """Scan one session for many screens, preparing the bars once and sharing their expression memo.

    Mirrors :func:`finder.analysis.scan.scan_panels` step by step (universe,
    listing, window, liquidity, ``min_bars``) and builds the same ranked frame;
    the sweep's equivalence test compares it with the standalone path.
    """

    def __init__(self, panels: Mapping[str, pd.DataFrame], session: pd.Timestamp, meta: pd.DataFrame | None,
                 lookback: int, uni: Any) -> None:
        from .conditions import Bars
        from .scanner import _check_panels, prepare_bars

        self.session = session
        self.lookback = lookback
        if meta is not None:
            meta = meta.set_axis(meta.index.astype(str))
            meta = meta[~meta.index.duplicated(keep="first")]
        self.meta = meta
        frames = _check_panels(panels)
        codes = frames["close"].columns
        if uni is not None:
            keep = uni.base_filter(pd.Index([str(c) for c in codes]), meta, session)
            codes = codes[pd.Index([str(c) for c in codes]).isin(keep)]
        if meta is not None and "listed" in meta.columns:
            listed = pd.to_datetime(meta["listed"].reindex([str(c) for c in codes]), errors="coerce")
            codes = codes[~(listed > session).to_numpy()]
        liquid = uni is not None and uni.has_liquidity_filter
        window = max(lookback, uni.value_window) if liquid else lookback
        bars, n_bars, _ = prepare_bars(frames, session, window, codes)
        if liquid:
            keep, _ = uni.liquidity_filter(bars.value)
            sub = {k: bars.field(k)[keep] for k in bars.fields}
            if window > lookback:
                sub = {k: f.iloc[-lookback:] for k, f in sub.items()}
            bars = Bars(sub, session=session)
            n_bars = n_bars.reindex(keep).clip(upper=lookback)
        self._bars0, self._n_bars = bars, n_bars
        self._by_min_bars: dict[int, Any] = {}

    def _bars(self, min_bars: int) -> Any:
        from .conditions import Bars

        if min_bars not in self._by_min_bars:
            bars, n_bars = self._bars0, self._n_bars
            short = n_bars < min_bars
            if short.any():
                keep = n_bars.index[~short.to_numpy()]
                bars = Bars({k: bars.field(k)[keep] for k in bars.fields}, session=self.session)
            self._by_min_bars[min_bars] = bars
        return self._by_min_bars[min_bars]

    def scan(self, screen: Any) -> pd.DataFrame | None:
        """The ranked matches of ``screen`` (as ``scan_panels(..., top=None)``), or None when nothing matched."""
        from .scanner import _meta_col

        bars = self._bars(screen.min_bars)
        if len(bars.codes) == 0:
            return None
        table = screen.evaluate(bars)
        matched = table["matched"].to_numpy(dtype=bool)
        if not matched.any():
            return None
        # Only the matched rows are built (the scanner builds all, then drops the rest: same rows, same dtypes).
        close_last = bars.close.iloc[-1]
        prev = bars.close.iloc[-2] if len(bars.index) > 1 else pd.Series(np.nan, index=bars.codes)
        codes_idx = bars.codes[matched]
        base = pd.DataFrame({
            "code": [str(c) for c in codes_idx],
            "name": _meta_col(self.meta, "name", codes_idx).to_numpy(),
            "market": _meta_col(self.meta, "market", codes_idx).to_numpy(),
            "close": close_last.to_numpy()[matched],
            "change_pct": ((close_last / prev - 1.0) * 100.0).to_numpy()[matched],
            "value": bars.value.iloc[-1].to_numpy()[matched],
            "score": table["score"].to_numpy()[matched],
            "signals": table["signals"].to_numpy()[matched],
        })
        cond_cols = {}
        for c in screen.conditions:
            cond_cols[c.name] = table[c.name].to_numpy(dtype=float)[matched]
            cond_cols[f"{c.name}_pass"] = table[f"{c.name}_pass"].to_numpy(dtype=bool)[matched]
        res = pd.concat([base, pd.DataFrame(cond_cols)], axis=1)
        res = res.sort_values(["score", "signals", "value", "code"], ascending=[False, False, False, True],
                              kind="mergesort", na_position="last")
        res.index = pd.RangeIndex(1, len(res) + 1, name="rank")
        return res


def _picks_frame(per_session: list[tuple[pd.Timestamp, pd.DataFrame]], max_picks: int | None) -> pd.DataFrame:
    """The picks of all sessions as ``backtest`` assembles them (top ``max_picks`` of each session)."""
    frames = []
    for d, res in per_session:
        picks = res.head(max_picks) if max_picks is not None else res
        picks = picks.reset_index()
        picks.insert(0, "date", d)
        frames.append(picks)
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=["date", "rank", "code", "name", "score"]))


# --------------------------------------------------------------------------
# evaluating configurations (pure: what the Dask workers run)
# --------------------------------------------------------------------------

@dataclass
class _Shared:
    """Everything the evaluation of any configuration needs; scattered once to Dask workers."""

    picks: dict[tuple, pd.DataFrame]          # (screen_key, max_picks) -> picks
    prices: dict[pd.Timestamp, dict[str, Any]]  # eval_end -> {"open".."close": panels, "_missing": [...]}
    delisted: frozenset
    sessions: pd.DatetimeIndex
    base_params: dict[str, Any]
    conditions: dict[tuple, str]               # screen_key -> the standalone backtest's params["conditions"]
    risk_free: float
    benchmark: pd.Series | None
    eval_end: dict[int, pd.Timestamp]          # max horizon -> eval_end
    final_end: dict[pd.Timestamp, Any]         # eval_end -> last final session when a live bar follows, else None
    engines: dict[tuple, str]                  # screen_key -> "range" or "session" (as the standalone backtest)
    # per process, not shipped: the aligned price panels of the last few pick sets (configurations that
    # share a pick set differ only in trade rules; the evaluation is grouped so they come one after another)
    _aligned: dict[tuple, tuple] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_aligned": {}}


_ALIGNED_KEEP = 2  # pick sets whose aligned panels stay in memory (each up to 4 x sessions x picked codes floats)


def _aligned_for(cfg: _Config, sh: _Shared) -> tuple:
    """The price panels of ``cfg``'s pick set as ``simulate`` aligns them, with what the params record."""
    key = (cfg.screen_key, cfg.max_picks, sh.eval_end[max(cfg.horizons)])
    hit = sh._aligned.get(key)
    if hit is not None:
        return hit
    picks = sh.picks[(cfg.screen_key, cfg.max_picks)]
    end = key[2]
    allp = sh.prices[end]
    codes = sorted(set(picks["code"]))
    present = [c for c in codes if c in allp["close"].columns]
    timeline = allp["close"].index
    if codes:
        prices = {f: allp[f][present] for f in PRICE_FIELDS}
    else:
        empty = pd.DataFrame(index=timeline, columns=pd.Index([], dtype=object), dtype=float)
        prices = {f: empty for f in PRICE_FIELDS}
    missing = [c for c in allp["_missing"] if c in set(codes)]
    delisted = {c for c in sh.delisted if c in set(present)}
    index, px = _align_prices(prices)
    while len(sh._aligned) >= _ALIGNED_KEEP:
        sh._aligned.pop(next(iter(sh._aligned)))
    sh._aligned[key] = out = (picks, end, index, px, missing, delisted, {})  # {}: evaluate_aligned's memo
    return out


def _result_for(cfg: _Config, sh: _Shared) -> BacktestResult:
    picks, end, index, px, missing, delisted, memo = _aligned_for(cfg, sh)
    # the same params and arguments as backtest._finish, with what needs I/O decided on the driver
    params = {"conditions": sh.conditions[cfg.screen_key], **sh.base_params, "max_picks": cfg.max_picks,
              "eval_end": end, "missing": missing, "delisted": sorted(delisted),
              "engine": sh.engines.get(cfg.screen_key, "session")}
    # simulate(), calling the shared core directly (the arguments were checked once for the sweep)
    trades = evaluate_aligned(picks, index, px, cfg.horizons, cfg.entry, cfg.take_profit, cfg.stop_loss,
                              cfg.cost_bps, frozenset(delisted), sh.final_end.get(end), memo=memo)
    all_params = {**params, "horizons": cfg.horizons, "entry": cfg.entry, "take_profit": cfg.take_profit,
                  "stop_loss": cfg.stop_loss, "cost_bps": cfg.cost_bps, "equity_horizon": None}
    res = BacktestResult(trades=trades, picks=picks, prices=px,
                         sessions=pd.DatetimeIndex(pd.to_datetime(list(sh.sessions)), name="date"),
                         params=all_params)
    for h in cfg.horizons:  # equity_curve's core (its checks hold by construction)
        res._equity[h] = equity_aligned(trades, px["close"], res.sessions, h, cfg.cost_bps,
                                        trade_cols=np.repeat(memo["jcol"], len(cfg.horizons)) if "jcol" in memo
                                        else None)
    return res


def _evaluate(cfgs: list[_Config], sh: _Shared, timeline: pd.DatetimeIndex) -> list[tuple[dict, np.ndarray]]:
    """Statistics row and daily returns on ``timeline`` (0 where in cash or outside its curve) per config."""
    out = []
    for cfg in cfgs:
        res = _result_for(cfg, sh)
        st = result_stats(res, risk_free=sh.risk_free,
                          benchmark=sh.benchmark if sh.benchmark is not None else None)
        h = res.equity_horizon
        row = {"horizon": h, "picks": int(len(res.picks)), **st.loc[h].to_dict()}
        eq = res.equity_for(h)
        r = eq["return"].reindex(timeline).fillna(0.0).to_numpy(dtype=float)
        out.append((row, r))
    return out


# --------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------

@dataclass
class SweepResult:
    """What a sweep produced; ``repr`` leads with how far the best row can be trusted.

    Attributes: ``table`` (one row per configuration: parameters, ``horizon``,
    ``picks`` and :data:`~finder.analysis.stats.STAT_COLUMNS`), ``returns``
    (sessions × configurations daily returns of each equity horizon),
    ``overfit`` (``best``, ``deflated`` (dict), ``pbo``
    (:class:`~finder.analysis._overfit.CSCVResult` or None), ``walk_forward``),
    ``params`` (the sweep's arguments).
    """

    table: pd.DataFrame
    returns: pd.DataFrame
    overfit: dict[str, Any]
    params: dict[str, Any]
    _configs: list[_Config] = field(repr=False, default_factory=list)
    _shared: _Shared | None = field(repr=False, default=None)
    _grid_keys: list[str] = field(repr=False, default_factory=list)

    def best(self, metric: str = "sharpe", lowest: bool = False) -> pd.Series:
        """The row with the highest ``metric`` (``lowest=True``: the lowest); ties: the first configuration."""
        if metric not in self.table.columns:
            raise InvalidInputError(f"metric={metric!r} is not a column of the table: {list(self.table.columns)}")
        col = pd.to_numeric(self.table[metric], errors="coerce")
        if col.notna().sum() == 0:
            raise InvalidInputError(f"no configuration has a value for {metric!r}")
        return self.table.loc[col.idxmin() if lowest else col.idxmax()]

    def heatmap(self, x: str, y: str, metric: str = "sharpe", agg: str = "max") -> "Figure":
        """A matplotlib heat map of ``metric`` over two grid parameters (``agg`` over the others)."""
        from ..plots.sweep import plot_heatmap

        return plot_heatmap(self, x, y, metric, agg)

    def backtest(self, i: int) -> BacktestResult:
        """The full :class:`BacktestResult` of configuration ``i`` (a row label of ``table``)."""
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= int(i) < len(self._configs):
            raise InvalidInputError(f"i={i!r} is not a configuration number 0..{len(self._configs) - 1}")
        if self._shared is None:
            raise InvalidInputError("this SweepResult no longer holds its data")
        return _result_for(self._configs[int(i)], self._shared)

    def verdict(self) -> str:
        """One line in plain words: the best in-sample Sharpe, the deflated Sharpe p and PBO, and what they mean."""
        return _verdict(self.overfit, len(self.table))

    def __repr__(self) -> str:
        lines = [self.verdict()]
        wf = self.overfit.get("walk_forward")
        if wf is not None:
            lines.append(f"walk-forward {self.params.get('walk_forward')}: out-of-sample Sharpe "
                         f"{wf.sharpe_annual:.2f}, total return {wf.total_return:.1%} over {len(wf.windows)} windows")
        lines.append(f"{len(self.table):,} configurations, {self.params.get('start')}..{self.params.get('end')}; "
                     "top 5 by Sharpe:")
        cols = self._grid_keys + [c for c in ("sharpe", "total_return", "max_drawdown", "trades")
                                  if c in self.table.columns]
        lines.append(self.table.sort_values("sharpe", ascending=False, na_position="last")[cols]
                     .head(5).to_string())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        cols = self._grid_keys + [c for c in ("sharpe", "total_return", "max_drawdown", "trades")
                                  if c in self.table.columns]
        top = self.table.sort_values("sharpe", ascending=False, na_position="last")[cols].head(5)
        return f"<p><b>{html.escape(self.verdict())}</b></p>" + top.to_html()


def _verdict(ov: Mapping[str, Any], n: int) -> str:
    d = ov.get("deflated") or {}
    pbo = ov.get("pbo")
    sr = ov.get("best_sharpe_annual", math.nan)
    p = d.get("p_value", math.nan)
    parts = [f"best of {n:,}: Sharpe {sr:.2f} in-sample", f"deflated Sharpe p = {p:.2f}"]
    parts.append(f"PBO {pbo.pbo:.2f}" if pbo is not None else "PBO n/a (too few sessions)")
    pb = pbo.pbo if pbo is not None else math.nan
    if math.isfinite(pb) and pb >= 0.5:
        word = "likely overfit"
    elif not (math.isfinite(p) and p < 0.05):
        word = f"not significant after {n:,} trials"
    elif math.isfinite(pb) and pb >= 0.2:
        word = "some risk of overfitting"
    elif math.isfinite(pb):
        word = "holds up out of sample"
    else:
        word = "significant, overfitting not measured"
    return "; ".join(parts) + " - " + word


# --------------------------------------------------------------------------
# the engine: scans, evaluation panels, configurations, guards
# --------------------------------------------------------------------------

def _check_common(grid: Any, screen: Any, horizons: Any, entry: Any, take_profit: Any, stop_loss: Any,
                  cost_bps: Any, max_picks: Any, lookback: Any, walk_forward: Any, blocks: Any,
                  risk_free: Any) -> tuple[list[dict[str, Any]], list[_Config], dict[tuple, Any],
                                           dict[tuple, str], Callable[..., Any]]:
    from .scanner import _check_lookback

    rows = expand_grid(grid)
    factory, preset = _screen_factory(screen)
    defaults = {"horizons": horizons, "entry": entry, "take_profit": take_profit, "stop_loss": stop_loss,
                "cost_bps": cost_bps, "max_picks": max_picks}
    cfgs = _configs(rows, defaults)
    screens: dict[tuple, Any] = {}
    names: dict[tuple, str] = {}
    from .conditions import as_screen

    for cfg, row in zip(cfgs, rows):
        if cfg.screen_key not in screens:
            kw = {k: v for k, v in row.items() if k not in TRADE_PARAMS}
            try:
                built = factory(**kw)
            except TypeError as exc:  # an unknown or missing keyword of the screen function
                raise InvalidInputError(f"the screen does not take the grid parameters {sorted(kw)}: {exc}") from exc
            scr = as_screen(built)
            _check_lookback(lookback, scr)
            screens[cfg.screen_key] = scr
            # what the standalone backtest records: the preset name when called with defaults, else repr
            names[cfg.screen_key] = preset if (preset is not None and not kw) else repr(scr)
    if walk_forward is not None:
        if not (isinstance(walk_forward, tuple) and len(walk_forward) == 2):
            raise InvalidInputError(f"walk_forward={walk_forward!r} is not a (train, test) pair of session counts")
        for v in walk_forward:
            _check_positive_int(v, "walk_forward", lo=2)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 2 or blocks % 2:
        raise InvalidInputError(f"blocks={blocks!r} must be an even whole number, at least 2")
    from .stats import _check_rf

    _check_rf(risk_free)
    return rows, cfgs, screens, names, factory


def _guards(M: np.ndarray, table: pd.DataFrame, timeline: pd.DatetimeIndex, blocks: int,
            walk_forward: tuple[int, int] | None) -> dict[str, Any]:
    srs = _overfit.sharpe(M)
    best = int(np.argmax(srs))
    ov: dict[str, Any] = {"best": best, "best_sharpe_annual": float(srs[best] * math.sqrt(252)),
                          "deflated": _overfit.deflated_sharpe(M[:, best], srs) if M.shape[0] >= 3 else None,
                          "pbo": None, "walk_forward": None}
    if M.shape[1] >= 2 and M.shape[0] >= 2 * blocks:
        ov["pbo"] = _overfit.pbo_cscv(M, S=blocks)
    else:
        log.warning("sweep: PBO needs at least 2 configurations and %d sessions; not computed", 2 * blocks)
    if walk_forward is not None:
        ov["walk_forward"] = _overfit.walk_forward(M, timeline, *walk_forward)
    return ov


def _session_picks(screens: Mapping[tuple, Any], sessions: pd.DatetimeIndex,
                   load_session: Callable[[pd.Timestamp], tuple[Any, Any]], lookback: int, uni: Any,
                   progress: bool) -> dict[tuple, list[tuple[pd.Timestamp, pd.DataFrame]]]:
    """The per-session path: each session's bars loaded once and scanned for every screen (shared memo)."""
    per_screen: dict[tuple, list[tuple[pd.Timestamp, pd.DataFrame]]] = {k: [] for k in screens}
    if not screens:
        return per_screen
    for d in _tqdm()(sessions, desc="sweep: scan", unit="session", disable=not progress):
        panels, meta = load_session(d)
        if panels is None:
            continue
        shared = _SessionScans(panels, d, meta, lookback, uni)
        for k, scr in screens.items():
            res = shared.scan(scr)
            if res is not None:
                per_screen[k].append((d, res))
    return per_screen


def _run(names: Mapping[tuple, str], rows: list[dict], cfgs: list[_Config], sessions: pd.DatetimeIndex,
         picks: dict[tuple, pd.DataFrame], engines: Mapping[tuple, str],
         load_prices: Callable[[list[str], pd.DatetimeIndex], dict[str, Any]],
         eval_end_of: Callable[[int], pd.Timestamp],
         timeline_of: Callable[[pd.Timestamp], pd.DatetimeIndex], final_end_of: Callable[[pd.Timestamp], Any],
         base_params: dict[str, Any], risk_free: float, benchmark: Any, blocks: int, walk_forward: Any,
         client: Any, progress: bool, params: dict[str, Any],
         delisted_of: Callable[[dict[str, Any]], set]) -> SweepResult:
    tqdm = _tqdm()
    # -- 2. evaluation panels: once per distinct last session -------------------------
    all_codes = sorted(set().union(*[set(p["code"]) for p in picks.values()])) if picks else []
    eval_end = {mh: eval_end_of(mh) for mh in sorted({max(c.horizons) for c in cfgs})}
    prices: dict[pd.Timestamp, dict[str, Any]] = {}
    for end in sorted(set(eval_end.values())):
        prices[end] = load_prices(all_codes, timeline_of(end))
    delisted: set[str] = set()
    for p in prices.values():
        delisted |= delisted_of(p)
    bench = benchmark
    sh = _Shared(picks=picks, prices=prices, delisted=frozenset(delisted), sessions=sessions,
                 base_params=base_params, conditions=dict(names), risk_free=risk_free, benchmark=bench,
                 eval_end=eval_end, final_end={e: final_end_of(p["close"].index[-1]) if len(p["close"].index)
                                               else None for e, p in prices.items()},
                 engines=dict(engines))
    timeline = max((p["close"].index for p in prices.values()), key=len)
    # -- 3. every configuration ------------------------------------------------------
    # grouped by pick set (configurations that differ only in trade rules share the aligned panels), then
    # put back in the grid's order
    group: dict[tuple, int] = {}
    for c in cfgs:
        group.setdefault((c.screen_key, c.max_picks, eval_end[max(c.horizons)]), len(group))
    order = sorted(range(len(cfgs)), key=lambda i: (group[(cfgs[i].screen_key, cfgs[i].max_picks,
                                                           eval_end[max(cfgs[i].horizons)])], i))
    grouped = [cfgs[i] for i in order]
    if client is None:
        done = []
        for cfg in tqdm(grouped, desc="sweep: configurations", unit="config", disable=not progress):
            done.extend(_evaluate([cfg], sh, timeline))
    else:
        done = _evaluate_on_dask(client, grouped, sh, timeline, progress)
    sh._aligned.clear()
    results: list[Any] = [None] * len(cfgs)
    for i, r in zip(order, done):
        results[i] = r
    grid_keys = list(rows[0]) if rows else []
    table = pd.DataFrame([{**{k: _freeze(v) for k, v in row.items()}, **r} for row, (r, _) in zip(rows, results)])
    table.index.name = "config"
    M = np.column_stack([r for _, r in results]) if results else np.zeros((len(timeline), 0))
    returns = pd.DataFrame(M, index=timeline, columns=table.index)
    overfit = _guards(M, table, timeline, blocks, walk_forward) if M.shape[1] else {}
    return SweepResult(table=table, returns=returns, overfit=overfit, params=params, _configs=cfgs, _shared=sh,
                       _grid_keys=grid_keys)


def _evaluate_on_dask(client: Any, cfgs: list[_Config], sh: _Shared, timeline: pd.DatetimeIndex,
                      progress: bool) -> list[tuple[dict, np.ndarray]]:
    """Scatter the shared data once, evaluate chunks of configurations on the workers, gather in order."""
    try:
        from distributed import as_completed
    except ImportError as exc:  # pragma: no cover - the dask extra is missing
        raise InvalidInputError("client= needs dask.distributed: pip install 'finder[dask]'") from exc
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    size = max(1, min(25, math.ceil(len(cfgs) / (4 * n_workers))))
    chunks = [cfgs[a:a + size] for a in range(0, len(cfgs), size)]
    sh_f = client.scatter(sh, broadcast=True)
    tl_f = client.scatter(timeline, broadcast=True)
    futures = client.map(_evaluate, chunks, sh=sh_f, timeline=tl_f, pure=False)
    pos = {f.key: i for i, f in enumerate(futures)}
    done: list[Any] = [None] * len(chunks)
    bar = _tqdm()(total=len(cfgs), desc="sweep: configurations (dask)", unit="config", disable=not progress)
    for fut, res in as_completed(futures, with_results=True):
        done[pos[fut.key]] = res
        bar.update(len(res))
    bar.close()
    return [r for chunk in done for r in chunk]


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------

def sweep(screen: Any, grid: Mapping[str, Sequence[Any]], start: Any, end: Any, *,
          universe: Any = "KOSPI+KOSDAQ", horizons: Sequence[int] | int = DEFAULT_HORIZONS,
          entry: str = "next_open", take_profit: float | None = None, stop_loss: float | None = None,
          cost_bps: float = DEFAULT_COST_BPS, max_picks: int | None = None, lookback: int = 220,
          risk_free: float = 0.0, benchmark: Any = "default", blocks: int = 16,
          walk_forward: tuple[int, int] | None = None, client: Any = None, progress: bool = True) -> SweepResult:
    """Backtest every configuration of ``grid`` over ``[start, end]``; a :class:`SweepResult`.

    Arguments:
        screen: a preset name (``"momentum"``) or a function returning a
            :class:`~finder.analysis.conditions.Screen` from keyword parameters
            (as the presets do); a fixed Screen/condition when the grid only
            holds trade parameters.
        grid: parameter name -> list of values.  Screen parameters go to
            ``screen``; ``horizons``, ``entry``, ``take_profit``, ``stop_loss``,
            ``cost_bps`` and ``max_picks`` may be swept too (they override the
            keyword arguments of the same name).
        start, end, universe, horizons, entry, take_profit, stop_loss,
        cost_bps, max_picks, lookback: as :func:`finder.backtest`.
        risk_free: yearly rate for Sharpe, Sortino and alpha (default 0).
        benchmark: ``"default"`` (KOSPI, KOSDAQ for a KOSDAQ universe, via
            ``finder.get_index`` when available), an index name, a close
            Series, or None.
        blocks: CSCV blocks for PBO (even, default 16).
        walk_forward: ``(train, test)`` session counts for a walk-forward check.
        client: a ``distributed.Client`` to evaluate the configurations on a
            Dask cluster (module docstring).
        progress: tqdm progress bars.

    Every argument is checked before any request.

    Example::

        >>> sw = sweep("momentum", {"min_signals": [2, 3], "take_profit": [None, 0.05]},
        ...            "2025-09-01", "2025-10-31", universe="KOSPI", horizons=(5,))
        >>> sw.best("sharpe"), sw.verdict()
    """
    from .universe import resolve_universe

    if start is None or end is None:
        raise InvalidInputError(f"start={start!r} and end={end!r}: both are required")
    start_ts, end_ts = calendar.parse_date(start, "start"), calendar.parse_date(end, "end")
    today = calendar.today()
    if end_ts > today:
        raise InvalidInputError(f"end={end!r} is in the future (today is {today.date()} KST)")
    if start_ts > end_ts:
        raise InvalidInputError(f"start={start!r} is after end={end!r}")
    rows, cfgs, screens, names, _ = _check_common(grid, screen, horizons, entry, take_profit, stop_loss, cost_bps,
                                                  max_picks, lookback, walk_forward, blocks, risk_free)
    lookback = _check_positive_int(lookback, "lookback", lo=21, hi=10_000)
    uni = resolve_universe(universe)
    if not isinstance(progress, bool):
        raise InvalidInputError(f"progress={progress!r} is not True or False")
    if benchmark is not None and not isinstance(benchmark, (str, pd.Series)):
        raise InvalidInputError(f"benchmark={benchmark!r} is not 'default', an index name, a Series or None")
    from . import _range
    from .backtest import _scannable, prepare_backtest

    sessions = _scannable(calendar.sessions_in_range(start_ts, end_ts))
    if len(sessions) == 0:
        raise InvalidInputError(f"there is no session to scan from start={start!r} to end={end!r}")

    from .. import data
    from .backtest import _load_prices
    from .conditions import FIELDS

    # -- picks: the whole-range engine where the standalone backtest uses it, else session by session --
    # (the same choice backtest(engine="auto") makes, so every row equals its standalone backtest)
    mps = {}
    for cfg in cfgs:
        mps.setdefault(cfg.screen_key, set()).add(cfg.max_picks)
    picks: dict[tuple, pd.DataFrame] = {}
    engines: dict[tuple, str] = {}
    prep = None
    try:
        prep = prepare_backtest(sessions[0], sessions[-1], universe=universe, lookback=lookback, progress=progress)
    except _range.Unsupported as exc:
        log.info("sweep: scanning session by session (%s)", exc)
    if prep is not None:
        for k, scr in _tqdm()(list(screens.items()), desc="sweep: scan (range)", unit="screen",
                              disable=not progress):
            try:
                # one scan per screen, for the widest max_picks; each narrower one is its first rows per session
                # (the engine ranks each session's picks, and its top=k is those rows: the tests compare frames)
                widest = None if None in mps[k] else max(mps[k])
                full = prep.picks(scr, widest)
                for mp in mps[k]:
                    if mp == widest:
                        picks[(k, mp)] = full
                    elif len(full):
                        picks[(k, mp)] = full.groupby("date", sort=False).head(mp).reset_index(drop=True)
                    else:
                        picks[(k, mp)] = prep.picks(scr, mp)
                engines[k] = "range"
            except _range.Unsupported as exc:
                log.info("sweep: screen %s is scanned session by session (%s)", scr.name, exc)
    rest = {k: scr for k, scr in screens.items() if k not in engines}
    count = max(lookback, uni.value_window) if uni.has_liquidity_filter else lookback

    def load_session(d: pd.Timestamp) -> tuple[Any, Any]:
        codes, meta = uni.candidates(d)
        if not codes:
            return None, None
        return data.get_panel(codes, count=count, base_dt=d, field=list(FIELDS), progress=False), meta

    per_session = _session_picks(rest, sessions, load_session, lookback, uni, progress)
    for k in rest:
        engines[k] = "session"
        for mp in mps[k]:
            picks[(k, mp)] = _picks_frame(per_session[k], mp)

    def eval_end_of(max_h: int) -> pd.Timestamp:
        return _evaluation_end(sessions[-1], max_h)

    def timeline_of(last: pd.Timestamp) -> pd.DatetimeIndex:
        return calendar.sessions_in_range(sessions[0], last)

    def final_end_of(last: pd.Timestamp) -> Any:
        fe = calendar.latest_final_session()
        return fe if fe < last else None

    bench = _benchmark_series(benchmark, universe, sessions[0], max(eval_end_of(max(c.horizons)) for c in cfgs))
    base_params = {"start": sessions[0], "end": sessions[-1],
                   "universe": universe if isinstance(universe, str) else repr(universe), "lookback": lookback}
    params = {"screen": screen if isinstance(screen, str) else getattr(screen, "__name__", repr(screen)),
              "grid": {k: list(v) for k, v in grid.items()}, "start": sessions[0].date(), "end": sessions[-1].date(),
              "universe": base_params["universe"], "blocks": blocks, "walk_forward": walk_forward,
              "risk_free": risk_free, "benchmark": bench.name if isinstance(bench, pd.Series) else None,
              "engines": dict(pd.Series(engines).value_counts()) if engines else {}}
    return _run(names, rows, cfgs, sessions, picks, engines, _load_prices, eval_end_of, timeline_of, final_end_of,
                base_params, risk_free, bench, blocks, walk_forward, client, progress, params, _known_delisted)


def _benchmark_series(benchmark: Any, universe: Any, first: pd.Timestamp, last: pd.Timestamp) -> pd.Series | None:
    """The benchmark's closes for the whole sweep, loaded once on the driver (None when unavailable)."""
    from .stats import _load_index, benchmark_for_universe

    if benchmark is None or isinstance(benchmark, pd.Series):
        return benchmark
    name = benchmark_for_universe(universe) if benchmark == "default" else benchmark.strip().upper()
    tl = calendar.sessions_in_range(first, last)
    s, note = _load_index(name, tl)
    if s is None:
        log.warning("sweep: no benchmark (%s); benchmark columns stay NaN", note)
        return None
    s = s.copy()
    s.name = name
    return s


def sweep_panels(panels: Mapping[str, pd.DataFrame], screen: Any, grid: Mapping[str, Sequence[Any]],
                 sessions: Sequence[Any], *, meta: pd.DataFrame | None = None, universe: Any = None,
                 horizons: Sequence[int] | int = DEFAULT_HORIZONS, entry: str = "next_open",
                 take_profit: float | None = None, stop_loss: float | None = None,
                 cost_bps: float = DEFAULT_COST_BPS, max_picks: int | None = None, lookback: int = 220,
                 risk_free: float = 0.0, benchmark: pd.Series | None = None, blocks: int = 16,
                 walk_forward: tuple[int, int] | None = None, client: Any = None,
                 progress: bool = False) -> SweepResult:
    """:func:`sweep` on panels already in memory (pure, no I/O): ``scan_panels`` + ``simulate`` per configuration.

    ``panels``: field -> dates × codes frames on **one** adjustment basis
    (fine for synthetic or unadjusted data; real data wants :func:`sweep`,
    which scans each session on its own basis).  ``sessions``: the scanned
    sessions (rows of the panels).  The evaluation uses the same panels,
    through the last row.
    """
    from .scanner import _check_panels
    from .universe import resolve_universe

    rows, cfgs, screens, names, _ = _check_common(grid, screen, horizons, entry, take_profit, stop_loss, cost_bps,
                                                  max_picks, lookback, walk_forward, blocks, risk_free)
    frames = _check_panels(panels)
    index = pd.DatetimeIndex(frames["close"].index)
    sess = pd.DatetimeIndex(pd.to_datetime(list(sessions)))
    if len(sess) == 0 or not sess.isin(index).all():
        raise InvalidInputError("sessions must be a non-empty list of dates that are rows of the panels")
    uni = resolve_universe(universe) if universe is not None else None

    def load_session(d: pd.Timestamp) -> tuple[Any, Any]:
        return frames, meta

    def load_prices(codes: list[str], timeline: pd.DatetimeIndex) -> dict[str, Any]:
        cols = [c for c in codes if c in frames["close"].columns]
        out: dict[str, Any] = {f: frames[f].reindex(index=timeline, columns=cols) for f in PRICE_FIELDS}
        out["_missing"] = []
        return out

    def eval_end_of(max_h: int) -> pd.Timestamp:
        k = min(len(index) - 1, int(index.get_loc(sess[-1])) + max_h)
        return index[k]

    per_session = _session_picks(screens, sess, load_session, lookback, uni, progress)
    picks = {(c.screen_key, c.max_picks): None for c in cfgs}
    for k, mp in picks:
        picks[(k, mp)] = _picks_frame(per_session[k], mp)
    base_params = {"start": sess[0], "end": sess[-1], "universe": "panels", "lookback": lookback}
    params = {"screen": screen if isinstance(screen, str) else getattr(screen, "__name__", repr(screen)),
              "grid": {k: list(v) for k, v in grid.items()}, "start": sess[0].date(), "end": sess[-1].date(),
              "universe": "panels", "blocks": blocks, "walk_forward": walk_forward, "risk_free": risk_free,
              "benchmark": None if benchmark is None else "given series"}

    def timeline_of(end: pd.Timestamp) -> pd.DatetimeIndex:
        return index[(index >= sess[0]) & (index <= end)]

    return _run(names, rows, cfgs, sess, picks, {k: "session" for k in screens}, load_prices, eval_end_of,
                timeline_of, lambda last: None, base_params, risk_free, benchmark, blocks, walk_forward, client,
                progress, params, lambda p: set())
