"""The demo report: ``notebooks/03_backtest.ipynb`` executed with papermill, exported, summarised.

``finder demo`` (and :func:`run_demo`) is the project's main job::

    $ finder demo
    >>> from finder.report import run_demo
    >>> info = run_demo(out_dir="reports", start="2025-09-01", end="2025-09-19")

It writes ``reports/<timestamp>/`` with

* ``03_backtest.ipynb`` — the executed notebook (papermill, a fresh kernel);
* ``03_backtest.html`` — the report: one self-contained HTML page that opens
  with the tear sheet (headline figures against the benchmark index, equity,
  drawdown, monthly returns, best and worst trades); code cells are hidden,
  and no progress bar or stderr block appears in it;
* ``*.png`` — the charts the notebook saved (tear sheet, equity/drawdown/
  returns/win rate, candlesticks of the most-picked stocks);
* ``screenshot.png`` — the report as headless Chromium shows it (only when a
  ``chromium`` is installed; see :mod:`finder._browser`);
* ``stats.json`` — what the notebook measured: the summary table, timings and
  the upstream requests its kernel made.

and prints the summary table, the cache statistics (``finder.cache.info()``)
and where the report is.  In a terminal it says what it is doing from the
first second (a line, then a bar of notebook cells whose clock keeps running).  Without credentials every bar comes from the
built-in simulator.  The notebook's kernel shares the disk cache with every
other finder process, so a second run makes **0** upstream requests; the
command compares each run with the previous report in the same folder and
prints both facts.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ._exceptions import FinderError, InvalidInputError
from ._formats import style
from ._tearsheet import TearSheet, tear_sheet

__all__ = ["run_demo", "notebooks_dir", "DEMO_NOTEBOOK", "tear_sheet", "TearSheet", "style", "SCREENSHOT"]

logger = logging.getLogger(__name__)

DEMO_NOTEBOOK = "03_backtest.ipynb"
STATS_FILE = "stats.json"
SCREENSHOT = "screenshot.png"


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (finder runs from a checkout: ``pip install -e .``)."""
    here = Path(__file__).resolve().parent.parent / "notebooks"
    return Path(os.environ.get("FINDER_NOTEBOOKS", here))


def _new_report_dir(out_dir: Path) -> Path:
    # The folder name is the wall-clock time in KST (not FINDER_NOW, which may
    # be pinned for a replay and would make every run collide).
    stamp = _dt.datetime.now(_dt.timezone(_dt.timedelta(hours=9))).strftime("%Y%m%d-%H%M%S")
    path = out_dir / stamp
    k = 1
    while path.exists():
        k += 1
        path = out_dir / f"{stamp}-{k}"
    path.mkdir(parents=True)
    return path


def _previous_stats(out_dir: Path, current: Path) -> tuple[Path, dict[str, Any]] | None:
    runs = sorted(p for p in out_dir.iterdir() if p.is_dir() and p != current and (p / STATS_FILE).is_file())
    for run in reversed(runs):
        if run.name < current.name:
            try:
                return run, json.loads((run / STATS_FILE).read_text())
            except (OSError, ValueError):
                continue
    return None


def _export_html(notebook: Path, target: Path) -> None:
    """The executed notebook as one self-contained page: outputs only, no code, nothing loaded from the network."""
    import nbformat
    from nbconvert import HTMLExporter

    # nbconvert logs an accessibility notice per chart without alt text at WARNING; not the reader's concern
    quiet = logging.getLogger("traitlets")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                                embed_images=True)
        body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    finally:
        quiet.setLevel(level)
    from ._htmlfont import embed_hangul

    target.write_text(embed_hangul(_drop_remote_scripts(body)), encoding="utf-8")


_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.I)


def _drop_remote_scripts(html: str) -> str:
    # nbconvert's template links require.js and MathJax from a CDN; the report needs neither (no widgets, no
    # formulas), and a shared or offline copy must not reach out to the network.
    return _REMOTE_SCRIPT.sub("", html)


def _cache_info() -> dict[str, Any] | None:
    try:
        from . import cache

        return cache.info()
    except Exception as exc:  # the report must not fail because statistics are unavailable
        logger.info("cache statistics unavailable: %s", exc)
        return None


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _summary_text(summary: pd.DataFrame) -> str:
    if summary is None or summary.empty:
        return "(no trades)"
    from ._formats import column_formats

    return summary.to_string(formatters=column_formats(summary))


class _kernel_env:
    """Set environment variables for the kernel papermill starts (it inherits ours), restored afterwards."""

    def __init__(self, **values: str) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc: Any) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _ticking:
    """Redraw the live tqdm bars every second, so a long notebook cell shows its clock running."""

    def __init__(self, active: bool) -> None:
        self.active = active
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _run(self) -> None:
        from tqdm.std import tqdm

        while not self.stop.wait(1.0):
            for bar in list(getattr(tqdm, "_instances", ())):
                try:
                    bar.refresh()
                except Exception:  # a bar closing under us; the next tick is fine
                    pass

    def __enter__(self) -> None:
        if self.active:
            self.thread = threading.Thread(target=self._run, name="finder-demo-ticker", daemon=True)
            self.thread.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def run_demo(out_dir: str | os.PathLike = "reports", *, start: Any = None, end: Any = None,
             conditions: str | None = None, universe: Any = None, horizons: Any = None,
             parameters: dict[str, Any] | None = None, notebook: str | os.PathLike | None = None,
             kernel_name: str | None = None, timeout: float | None = 1800, quiet: bool = False,
             screenshot: bool = True) -> dict[str, Any]:
    """Execute the backtest notebook with papermill and write a report folder; returns what it printed.

    Arguments left at ``None`` keep the notebook's own defaults (its
    ``parameters`` cell); ``parameters`` passes any other notebook parameter.
    ``quiet=True`` returns the facts without printing them.  ``screenshot``:
    also save the report as headless Chromium shows it, when one is installed.

    Returns a dict with ``report_dir``, ``notebook``, ``html``, ``charts``, ``screenshot`` (path or None),
    ``summary`` (DataFrame), ``stats`` (what the notebook measured),
    ``cache`` (``finder.cache.info()`` after the run, or None), ``elapsed_s``
    and ``previous`` (the last earlier run's stats, or None).
    """
    nb_in = Path(notebook) if notebook is not None else notebooks_dir() / DEMO_NOTEBOOK
    if not nb_in.is_file():
        raise InvalidInputError(f"notebook={str(nb_in)!r} does not exist; the demo runs from a finder checkout "
                                "(pip install -e .) or with FINDER_NOTEBOOKS pointing at its notebooks/")
    if horizons is not None:
        horizons = [int(h) for h in ([horizons] if isinstance(horizons, int) else horizons)]
    params: dict[str, Any] = {k: v for k, v in {
        "start": None if start is None else str(pd.Timestamp(start).date()),
        "end": None if end is None else str(pd.Timestamp(end).date()),
        "conditions": conditions, "universe": universe, "horizons": horizons}.items() if v is not None}
    params.update(parameters or {})
    out = Path(out_dir)
    report = _new_report_dir(out)
    params["report_dir"] = str(report.resolve())
    nb_out = report / nb_in.name

    from ._progress import mode

    terminal = not quiet and mode() == "text"
    if terminal:  # before papermill's import and the kernel's start, which take seconds
        print(f"finder demo: running {nb_in.name} in a fresh kernel (papermill) -> {report}", file=sys.stderr,
              flush=True)
    import papermill as pm

    t0 = time.perf_counter()
    try:
        with _kernel_env(FINDER_PROGRESS="off"), _ticking(terminal):
            pm.execute_notebook(str(nb_in), str(nb_out), parameters=params, kernel_name=kernel_name,
                                cwd=str(nb_in.parent),
                                progress_bar={"desc": "demo notebook", "unit": "cell", "file": sys.stderr,
                                              "leave": False} if terminal else False,
                                log_output=False, execution_timeout=timeout,
                                # the kernel's own chatter (its TCP notice at start, "KeyboardInterrupt caught"
                                # at shutdown) is not the report's; cell errors still surface through papermill
                                extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except pm.PapermillExecutionError as exc:
        raise FinderError(f"the demo notebook failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
                          f"(the executed notebook is {nb_out})") from None
    elapsed = time.perf_counter() - t0
    html = report / (nb_in.stem + ".html")
    if terminal:
        print("finder demo: writing the HTML report", file=sys.stderr, flush=True)
    _export_html(nb_out, html)
    shot = None
    if screenshot:
        from ._browser import find_chromium, screenshot as take

        if find_chromium():
            if terminal:
                print("finder demo: taking a screenshot of the report (headless Chromium)", file=sys.stderr,
                      flush=True)
            try:
                shot = take(html, report / SCREENSHOT)
            except FinderError as exc:  # the report is there; the picture of it is a convenience
                logger.warning("no screenshot: %s", exc)

    stats: dict[str, Any] = {}
    if (report / STATS_FILE).is_file():
        stats = json.loads((report / STATS_FILE).read_text())
    stats["report_elapsed_s"] = round(elapsed, 3)
    (report / STATS_FILE).write_text(json.dumps(stats, indent=2, default=str))
    summary = pd.DataFrame(stats.get("summary", [])).set_index("horizon") if stats.get("summary") else pd.DataFrame()
    prev = _previous_stats(out, report)
    result = {
        "report_dir": report, "notebook": nb_out, "html": html,
        "charts": sorted(p for p in report.glob("*.png") if p.name != SCREENSHOT), "screenshot": shot,
        "summary": summary, "stats": stats,
        "cache": _cache_info(), "elapsed_s": elapsed,
        "previous": None if prev is None else {"report_dir": prev[0], **prev[1]},
    }
    if not quiet:
        print(format_report(result))
    return result


def format_report(result: dict[str, Any]) -> str:
    """The text ``finder demo`` prints for a :func:`run_demo` result."""
    stats, cache, prev = result["stats"], result["cache"], result["previous"]
    p = stats.get("params", {})
    lines = [
        "finder demo — backtest report (data: {})".format(stats.get("data_source", "?")),
        "  {} on {}, {} .. {}, horizons {}, entry {}, cost {} bp".format(
            p.get("conditions", "?"), p.get("universe", "?"), p.get("start", "?"), p.get("end", "?"),
            "/".join(str(h) for h in p.get("horizons", [])), p.get("entry", "?"), p.get("cost_bps", "?")),
        "  {} sessions scanned, {} picks".format(stats.get("sessions", "?"), stats.get("picks", "?")),
        "",
        "Summary per horizon (returns net of costs):",
        _summary_text(result["summary"]),
        "",
    ]
    req = stats.get("requests", {}) or {}
    upstream = sum(req.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(req.items())) or "none"
    lines.append(f"Upstream requests this run: {upstream} ({detail})")
    if cache:
        lines.append("Cache: {} — {} entries, {} stocks, {}; this kernel: {} hits, {} misses".format(
            cache.get("location"), cache.get("entries"), cache.get("stocks"), _fmt_bytes(cache.get("bytes", 0)),
            stats.get("cache_hits", "?"), stats.get("cache_misses", "?")))
    else:
        lines.append("Cache: statistics unavailable")
    bt = stats.get("backtest_s")
    lines.append("Time: backtest {}, whole report {:.1f} s".format(
        f"{bt:.1f} s" if isinstance(bt, (int, float)) else "?", result["elapsed_s"]))
    if prev:
        lines.append(_comparison(prev, bt, upstream))
    else:
        lines.append("First report in this folder: run `finder demo` again to compare a warm run with this one.")
    lines.append(f"Report: {result['html']}")
    lines.append(f"  notebook {result['notebook'].name}, {len(result['charts'])} charts: "
                 + ", ".join(c.name for c in result["charts"]))
    if result.get("screenshot"):
        lines.append(f"  screenshot {result['screenshot']}")
    return "\n".join(lines)


def _comparison(prev: dict[str, Any], bt: Any, upstream: int) -> str:
    """One honest line comparing this run with the previous one: requests, times, and which was faster."""
    p_req = sum((prev.get("requests") or {}).values())
    p_bt = prev.get("backtest_s")
    name = Path(prev["report_dir"]).name
    timed = isinstance(bt, (int, float)) and isinstance(p_bt, (int, float)) and bt > 0 and p_bt > 0
    times = f"backtest {p_bt:.1f} s -> {bt:.1f} s" if timed else "backtest times unknown"
    if timed:
        ratio = p_bt / bt
        speed = (f"{ratio:.1f}x faster" if ratio >= 1.1 else f"{1 / ratio:.1f}x slower" if ratio <= 1 / 1.1
                 else "about as fast")
    else:
        speed = ""
    if p_req > 0 and upstream == 0:
        verdict = f"the cache served everything this run ({p_req} upstream requests before, 0 now)"
    elif p_req == 0 and upstream == 0:
        verdict = "both runs were served entirely by the cache (0 upstream requests), so time differences are noise"
    else:
        verdict = f"upstream requests {p_req} before, {upstream} now"
    return f"Previous run ({name}): {times}" + (f", {speed}" if speed else "") + f"; {verdict}"
