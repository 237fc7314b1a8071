"""Headless Chromium for reports: a screenshot of a page, and the page's DOM after it has loaded.

Uses a ``chromium`` already installed on the machine (Debian's ``chromium``
package; ``FINDER_CHROMIUM`` names another binary); finder never downloads a
browser.  Each call is one short-lived headless browser process (its own throw-away
profile); ``--no-sandbox`` because CI runs as root.

What it guarantees: :func:`screenshot` returns only when the PNG exists and is
not empty, else raises :class:`~finder._exceptions.FinderError` with the
browser's own message.  What it does not: judge what the page shows.

Example::

    >>> from finder._browser import screenshot
    >>> screenshot("reports/20251130-101500/03_backtest.html", "shot.png")
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ._exceptions import FinderError

__all__ = ["find_chromium", "screenshot", "dump_dom"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of a Chromium binary (``FINDER_CHROMIUM`` first), or None."""
    forced = os.environ.get("FINDER_CHROMIUM")
    if forced:
        return shutil.which(forced) or (forced if Path(forced).is_file() else None)
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FinderError("no chromium found; install Debian's `chromium` package or set FINDER_CHROMIUM")
    # No --user-data-dir: headless Chromium then uses a throw-away profile of its own, and with an explicit one
    # (fresh or reused) Chromium 156 took the screenshot before the page's embedded web font had loaded.
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--mute-audio", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FinderError(f"chromium did not finish within {timeout:g} s") from None


def screenshot(html: str | os.PathLike, png: str | os.PathLike, *, width: int = 1280, height: int = 2400,
               timeout: float = 120) -> Path:
    """Render ``html`` (a local file) in headless Chromium and write a PNG of ``width`` x ``height`` pixels."""
    page, out = Path(html).resolve(), Path(png).resolve()
    if out.exists():
        out.unlink()
    done = _run([f"--screenshot={out}", f"--window-size={width},{height}", "--virtual-time-budget=5000",
                 page.as_uri()], timeout)
    if not out.is_file() or out.stat().st_size == 0:
        raise FinderError(f"chromium wrote no screenshot of {page} (exit {done.returncode}): "
                          f"{done.stderr.strip()[-500:]}")
    return out


def dump_dom(html: str | os.PathLike, *, timeout: float = 120) -> str:
    """The page's DOM as serialised by Chromium after load (scripts in the page have run)."""
    page = Path(html).resolve()
    done = _run(["--dump-dom", "--virtual-time-budget=5000", page.as_uri()], timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise FinderError(f"chromium could not load {page} (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout
