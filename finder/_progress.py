"""Where progress shows: widget bars in JupyterLab, text bars in a terminal, a one-line log in reports.

:func:`progress` is a drop-in for ``tqdm.auto.tqdm`` (same arguments, same
iterator and ``update``/``close`` API) that every long loop in finder uses.
:func:`mode` decides, once per call, which of three kinds it returns:

* ``"widget"`` — inside a Jupyter kernel that a notebook *server* started
  (JupyterLab / Notebook set ``JPY_SESSION_NAME`` for their kernels; VS Code
  sets ``VSCODE_PID``) and ipywidgets is installed: ``tqdm.notebook`` bars.
* ``"text"`` — a terminal (stderr is a TTY): ``tqdm`` text bars on stderr.
* ``"off"`` — everything else: papermill / nbconvert executions (a kernel no
  server started), HTML reports, pipes, log files.  No bar is drawn; when the
  loop ends, one line ``"<desc>: <n> <unit> in <s> s"`` goes to this module's
  logger at INFO, so a report carries no progress block.

``FINDER_PROGRESS=widget|text|off`` overrides the choice (``auto`` or unset:
decide as above).  ``disable=True`` (a caller's ``progress=False``) gives a
silent loop with no summary either.

Not guaranteed: a kernel started by a front end that sets neither variable is
treated as a batch run (no bars); set ``FINDER_PROGRESS=widget`` there.

Example::

    >>> from finder._progress import progress
    >>> for code in progress(codes, desc="bars", unit="stock"):
    ...     ...
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import Any

from tqdm.std import tqdm as _std_tqdm

__all__ = ["progress", "mode", "MODES"]

logger = logging.getLogger(__name__)

MODES = ("widget", "text", "off")
ENV = "FINDER_PROGRESS"
# Set for the kernels that a notebook server starts (jupyter_server 2.x; VS Code's own variable);
# papermill and nbconvert start kernels without a server, so neither is set there.
_SERVER_VARS = ("JPY_SESSION_NAME", "VSCODE_PID")


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - an odd IPython build
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _have_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def mode() -> str:
    """``"widget"``, ``"text"`` or ``"off"``: what :func:`progress` shows here and now (see the module doc)."""
    forced = os.environ.get(ENV, "auto").strip().lower()
    if forced in MODES:
        return forced
    if forced not in ("", "auto"):
        logger.warning("%s=%r is not one of auto, %s; deciding automatically", ENV, forced, ", ".join(MODES))
    if _in_kernel():
        served = any(os.environ.get(v) for v in _SERVER_VARS)
        return "widget" if served and _have_widgets() else "off"
    stream = sys.stderr
    try:
        return "text" if stream is not None and stream.isatty() else "off"
    except (AttributeError, ValueError):  # a closed or replaced stream
        return "off"


class _NullIO:
    def write(self, _s: str) -> int:
        return 0

    def flush(self) -> None:
        pass


class _Summary(_std_tqdm):
    """Counts like tqdm, draws nothing, and logs one line when it closes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["file"] = _NullIO()
        kwargs["mininterval"] = 3600  # nothing is drawn; avoid formatting work
        self._started = time.perf_counter()
        self._summarised = False
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        if not self._summarised and not self.disable:
            self._summarised = True
            total = f"/{self.total:g}" if self.total and self.total != self.n else ""
            logger.info("%s: %g%s %s in %.1f s", self.desc or "done", self.n, total, self.unit,
                        time.perf_counter() - self._started)
        super().close()


def progress(iterable: Any = None, *args: Any, **kwargs: Any) -> Any:
    """A progress bar for this environment: ``tqdm``'s signature; see the module doc for what shows."""
    if kwargs.get("disable"):
        return _std_tqdm(iterable, *args, **kwargs)
    how = mode()
    if how == "widget":
        kwargs.pop("file", None)  # a widget has no stream
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="IProgress not found")
            from tqdm.notebook import tqdm as _nb_tqdm

            return _nb_tqdm(iterable, *args, **kwargs)
    if how == "text":
        kwargs.setdefault("file", sys.stderr)
        return _std_tqdm(iterable, *args, **kwargs)
    return _Summary(iterable, *args, **kwargs)
