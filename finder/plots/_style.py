"""Shared chart helpers: figures that render Hangul names on any machine, and number formats.

Figures are built with :class:`matplotlib.figure.Figure`, not ``pyplot``: they
work under the Agg backend (CI, papermill), show inline in Jupyter when they
are a cell's last value (or through ``display(fig)``), are never shown twice,
and are not kept alive by pyplot's global registry.  Names are shown in Hangul as
they are (``_fonts`` supplies the font); nothing is romanized.
"""

from __future__ import annotations

import logging
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ._fonts import HangulFigure, hangul_font

logger = logging.getLogger(__name__)

# Korean convention: a rising candle is red, a falling one blue.
UP, DOWN = "#d62728", "#1f5fbf"
EXIT_COLORS = {"take_profit": "#2ca02c", "stop_loss": "#d62728", "horizon": "#555555",
               "halted": "#9467bd", "delisted": "#000000"}


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure with constrained layout that renders Hangul, ready for ``savefig`` and inline display."""
    _enable_inline_display()
    hangul_font()  # registered now, so a missing font package fails here, not at display time
    return HangulFigure(figsize=figsize, layout="constrained")


def _enable_inline_display() -> None:
    # Inside IPython, importing pyplot activates the inline backend's
    # integration, which registers the PNG formatter for Figure objects; without
    # it a returned Figure would print as "<Figure size ...>".  Outside IPython
    # this is skipped so library use stays pyplot-free.
    import sys

    if "IPython" in sys.modules:
        try:
            from IPython import get_ipython

            if get_ipython() is not None:
                import matplotlib.pyplot  # noqa: F401
        except Exception:  # pragma: no cover - display is a convenience
            pass


krw_formatter = FuncFormatter(lambda v, _pos: f"{v:,.0f}")
"""Axis labels as KRW with thousands separators: 12,345."""


def _compact(v: float, _pos: Any = None) -> str:
    a = abs(v)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            return f"{v / div:,.1f}{suffix}".replace(".0" + suffix, suffix)
    return f"{v:,.0f}"


compact_formatter = FuncFormatter(_compact)
"""Large counts (volume) as 1.2M, 350K."""

percent_formatter = FuncFormatter(lambda v, _pos: f"{v:+.0%}" if abs(v) >= 0.1 else f"{v:+.1%}")
"""Fractions as signed percentages: +5.0 %, -12 %."""

drawdown_formatter = FuncFormatter(lambda v, _pos: f"{v:.0%}" if abs(v) >= 0.1 else f"{v:.1%}")
"""Drawdowns (<= 0) as percentages with a decimal while they are small: -1.5 %, -23 %."""


def set_title(ax: Any, text: str, **kwargs: Any) -> None:
    """``ax.set_title``: Hangul names render as they are (the figure carries the Hangul font)."""
    ax.set_title(text, **kwargs)
