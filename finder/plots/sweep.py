"""The sweep picture: a heat map of one statistic over two grid parameters.

Notebook example::

    >>> sw = finder.sweep("momentum", {"min_signals": [2, 3, 4], "surge_volume": [2.0, 2.5, 3.0]}, ...)
    >>> sw.heatmap("min_signals", "surge_volume", "sharpe")          # same as plot_heatmap(sw, ...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .._exceptions import InvalidInputError
from ._style import new_figure, set_title

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.sweep import SweepResult

__all__ = ["plot_heatmap"]

_AGGS = ("max", "mean", "median", "min")


def _label(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "off"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def plot_heatmap(sw: "SweepResult", x: str, y: str, metric: str = "sharpe", agg: str = "max",
                 figsize: tuple[float, float] = (8, 6)) -> Figure:
    """``metric`` over grid parameters ``x`` (columns) and ``y`` (rows); other parameters reduced by ``agg``.

    Each cell is annotated with its value; the best cell (of the whole sweep) is outlined.
    """
    t = sw.table
    for name in (x, y):
        if name not in sw._grid_keys:
            raise InvalidInputError(f"{name!r} is not a grid parameter of this sweep: {sw._grid_keys}")
    if metric not in t.columns:
        raise InvalidInputError(f"metric={metric!r} is not a column of the table")
    if agg not in _AGGS:
        raise InvalidInputError(f"agg={agg!r} is not one of {_AGGS}")
    # factorize keeps None/NaN ("off") and tuples (horizons) as values of their own, in grid order
    xi_codes, xs = pd.factorize(t[x], use_na_sentinel=False)
    yi_codes, ys = pd.factorize(t[y], use_na_sentinel=False)
    xi = pd.Series(xi_codes, index=t.index)
    yi = pd.Series(yi_codes, index=t.index)
    xs, ys = list(xs), list(ys)
    vals = pd.to_numeric(t[metric], errors="coerce")
    grid = vals.groupby([yi, xi]).agg(agg).unstack()
    Z = grid.reindex(index=range(len(ys)), columns=range(len(xs))).to_numpy(dtype=float)
    fig = new_figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    finite = Z[np.isfinite(Z)]
    span = float(np.max(np.abs(finite))) if finite.size else 1.0
    im = ax.imshow(Z, cmap="RdYlGn", vmin=-span if finite.size and finite.min() < 0 else None,
                   vmax=span if finite.size and finite.min() < 0 else None, aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, label=metric)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(Z[i, j]):
                ax.text(j, i, f"{Z[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(xs)), [_label(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_label(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if finite.size:
        bi, bj = np.unravel_index(np.nanargmax(Z), Z.shape)
        ax.add_patch(Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    others = [k for k in sw._grid_keys if k not in (x, y)]
    sub = f" ({agg} over {', '.join(others)})" if others else ""
    set_title(ax, f"{metric} by {x} and {y}{sub}", loc="left", fontsize=10)
    fig.suptitle(sw.verdict(), fontsize=9)
    return fig
