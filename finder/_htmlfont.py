"""Hangul in an HTML report on any machine: the shipped font, cut to the page's own syllables, embedded.

A report is shared, and the reader's machine (or CI's headless Chromium) may
have no Korean font: names would show as empty boxes.  :func:`embed_hangul`
subsets NanumGothic (the font finder's charts use, see
:mod:`finder.plots._fonts`) to exactly the Hangul characters the page
contains (fontTools, which matplotlib already depends on), and adds it as a
``data:`` WOFF ``@font-face`` limited by ``unicode-range`` to Hangul, first
in the page's font lists.  Latin text keeps the page's fonts; the file
stays self-contained and grows by a few KB per hundred distinct syllables.

Not guaranteed: fonts for other scripts (Hanja, kana) — only Hangul is embedded.
"""

from __future__ import annotations

import base64
import io
import re

__all__ = ["embed_hangul", "hangul_chars", "FAMILY"]

FAMILY = "finder-hangul"
_RANGES = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7A3))
_UNICODE_RANGE = ", ".join(f"U+{a:04X}-{b:04X}" for a, b in _RANGES)
_VARS = ("--jp-content-font-family", "--jp-ui-font-family")


def hangul_chars(text: str) -> str:
    """The distinct Hangul characters of ``text``, sorted."""
    return "".join(sorted({ch for ch in text if any(a <= ord(ch) <= b for a, b in _RANGES)}))


def _woff(chars: str) -> bytes:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    from .plots._fonts import font_dir

    font = TTFont(str(font_dir() / "NanumGothic.ttf"))
    options = subset.Options()
    options.layout_features = ["*"]
    options.hinting = False  # smaller; screens render unhinted outlines well
    options.drop_tables += ["TSI0", "TSI1", "TSI2", "TSI3", "TSI5"]  # the font editor's sources, not glyphs
    sub = subset.Subsetter(options)
    sub.populate(text=chars)
    sub.subset(font)
    font.flavor = "woff"
    buf = io.BytesIO()
    font.save(buf)
    return buf.getvalue()


def embed_hangul(html: str) -> str:
    """``html`` with a subset Hangul web font embedded and appended to its font lists (unchanged if no Hangul)."""
    chars = hangul_chars(html)
    if not chars:
        return html
    data = base64.b64encode(_woff(chars)).decode("ascii")
    rules = [f'@font-face {{ font-family: "{FAMILY}"; src: url(data:font/woff;base64,{data}) format("woff"); '
             f"unicode-range: {_UNICODE_RANGE}; }}"]
    # Put the family *first* in the page's font lists (nbconvert's JupyterLab variables, and body's): its
    # unicode-range limits it to Hangul, so Latin text still takes the page's fonts.  Appended last it can
    # lose: some machines' generic families claim Hangul code points and draw empty boxes.
    found = []
    for var in _VARS:
        m = re.search(re.escape(var) + r":\s*([^;]+);", html)
        if m:
            found.append(f"{var}: '{FAMILY}', {' '.join(m.group(1).split())};")
    found.append(f"--jp-code-font-family: '{FAMILY}', var(--jp-code-font-family-default, monospace);")
    rules.append(":root { " + " ".join(found) + " }")
    rules.append(f"body {{ font-family: '{FAMILY}', var(--jp-content-font-family, sans-serif); }}")
    style = "<style>\n" + "\n".join(rules) + "\n</style>\n"
    at = html.lower().rfind("</head>")
    return html[:at] + style + html[at:] if at >= 0 else style + html
