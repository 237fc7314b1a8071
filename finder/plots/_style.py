"""Shared chart helpers: figures, number formats and names that render on any machine.

Figures are built with :class:`matplotlib.figure.Figure`, not ``pyplot``: they
work under the Agg backend (CI, papermill), show inline in Jupyter when they
are a cell's last value (or through ``display(fig)``), are never shown twice,
and are not kept alive by pyplot's global registry.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

logger = logging.getLogger(__name__)

# Korean convention: a rising candle is red, a falling one blue.
UP, DOWN = "#d62728", "#1f5fbf"
EXIT_COLORS = {"take_profit": "#2ca02c", "stop_loss": "#d62728", "horizon": "#555555",
               "halted": "#9467bd", "delisted": "#000000"}
_CJK_FONTS = ("NanumGothic", "NanumBarunGothic", "Noto Sans CJK KR", "Noto Sans KR", "Malgun Gothic",
              "AppleGothic", "Apple SD Gothic Neo", "UnDotum", "Baekmuk Gulim", "Source Han Sans KR")


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure with constrained layout, ready for ``savefig`` and inline display."""
    _enable_inline_display()
    return Figure(figsize=figsize, layout="constrained")


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


@functools.lru_cache(maxsize=1)
def _cjk_font() -> str | None:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for name in _CJK_FONTS:
        if name in names:
            return name
    return None


# Revised Romanization of Korean, jamo by jamo (no sound-change rules): only a
# fallback so that titles stay readable on machines without a Korean font.
_INITIAL = ["g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h"]
_MEDIAL = ["a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo", "u", "wo", "we", "wi",
           "yu", "eu", "ui", "i"]
_FINAL = ["", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l", "m", "p", "p", "t", "t",
          "ng", "t", "t", "k", "t", "p", "t"]


def romanize(text: str) -> str:
    """Hangul syllables -> Latin letters (``'삼성전자'`` -> ``'Samseongjeonja'``); other characters kept."""
    words = []
    for word in text.split(" "):
        out: list[str] = []
        for ch in word:
            o = ord(ch)
            if 0xAC00 <= o <= 0xD7A3:
                s = o - 0xAC00
                out.append(_INITIAL[s // 588] + _MEDIAL[(s % 588) // 28] + _FINAL[s % 28])
            else:
                out.append(ch)
        joined = "".join(out)
        # capitalise only words that were Korean, like a proper name
        words.append(joined[:1].upper() + joined[1:] if joined != word else word)
    return " ".join(words)


def _needs_cjk(text: str) -> bool:
    return any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in text)


def title_text(text: str) -> tuple[str, dict[str, Any]]:
    """``(text, font kwargs)`` that render: the Korean font if one is installed, else romanized text."""
    if not _needs_cjk(text):
        return text, {}
    font = _cjk_font()
    if font:
        return text, {"fontfamily": ["DejaVu Sans", font]}
    return romanize(text), {}


def set_title(ax: Any, text: str, **kwargs: Any) -> None:
    shown, font = title_text(text)
    ax.set_title(shown, **font, **kwargs)
