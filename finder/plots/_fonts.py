"""A Hangul font for every chart, from finder's own dependencies, without touching global settings.

Guarantees:

* The font is NanumGothic (SIL Open Font License 1.1), shipped as a file by the
  PyPI package ``koreanize-matplotlib`` (MIT), a dependency of finder: a fresh
  machine needs no system font and no font-cache clearing.
* :func:`hangul_font` registers the files with matplotlib's in-memory font
  manager once per process (``fontManager.addfont``) and returns the family
  name.  The package's ``__init__`` is never imported: importing it would set
  ``rcParams['font.family']`` for the whole session.
* :func:`add_hangul_fallback` appends that family to the font list of every
  text of one figure (per artist: ``rcParams`` are never changed), so Latin
  text keeps the user's font and Hangul falls back to NanumGothic glyph by
  glyph (matplotlib >= 3.6).  finder's figures are :class:`HangulFigure`,
  which does this at every draw, so text added later (a user's annotation,
  tick labels made while drawing) renders too.

Not guaranteed: figures finder did not make (``plt.figure()``) are untouched;
call ``add_hangul_fallback(fig)`` on them or pass ``fontfamily=hangul_font()``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.text import Text

logger = logging.getLogger(__name__)

FONT_PACKAGE = "koreanize_matplotlib"
FONT_FILES = ("NanumGothic.ttf", "NanumGothicBold.ttf")


def font_dir() -> Path:
    """Where the font package keeps its ``.ttf`` files (found without importing the package)."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{FONT_PACKAGE} is not installed; it is a dependency of finder "
                          "(pip install -e . installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / "fonts"


@functools.lru_cache(maxsize=1)
def hangul_font() -> str:
    """Register the shipped Hangul font with matplotlib (once) and return its family name.

    Example::

        >>> ax.annotate("삼성전자", (0, 0), fontfamily=finder.plot.hangul_font())
    """
    folder = font_dir()
    name = None
    for file in FONT_FILES:
        path = folder / file
        if not path.is_file():
            raise ImportError(f"{path} is missing; reinstall {FONT_PACKAGE}")
        font_manager.fontManager.addfont(str(path))
        name = name or font_manager.FontProperties(fname=str(path)).get_name()
    logger.debug("registered %s from %s", name, folder)
    return str(name)


def add_hangul_fallback(fig: Figure) -> Figure:
    """Give every text of ``fig`` the Hangul font as its last fallback (per artist); returns ``fig``.

    Example::

        >>> fig, ax = plt.subplots(); ax.set_title("삼성전자 종가")
        >>> finder.plot.add_hangul_fallback(fig).savefig("close.png")
    """
    font = hangul_font()
    for text in fig.findobj(Text):
        families = list(text.get_fontfamily())
        if font not in families:
            text.set_fontfamily(families + [font])
    return fig


class HangulFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that renders Hangul: it adds the fallback before each draw."""

    def draw(self, renderer):  # noqa: D102 - matplotlib's draw
        add_hangul_fallback(self)
        super().draw(renderer)
