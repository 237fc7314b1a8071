"""Where progress shows: text bars on a terminal, widgets in a served kernel, one log line in batch runs."""

from __future__ import annotations

import logging

import pytest

from finder import _progress
from finder._progress import mode, progress


def test_batch_runs_get_one_summary_line_and_no_bar(monkeypatch, caplog, capsys):
    monkeypatch.setenv("FINDER_PROGRESS", "off")
    with caplog.at_level(logging.INFO, logger="finder._progress"):
        assert list(progress(range(7), desc="bars", unit="stock")) == list(range(7))
        bar = progress(total=3, desc="backtest", unit="session", leave=False)
        bar.update(2)
        bar.close()
        bar.close()  # a second close logs nothing more
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("bars: 7 stock in ") and lines[0].endswith(" s")
    assert lines[1].startswith("backtest: 2/3 session in ")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_disabled_is_silent_everywhere(monkeypatch, caplog, capsys):
    monkeypatch.setenv("FINDER_PROGRESS", "off")
    with caplog.at_level(logging.INFO, logger="finder._progress"):
        assert sum(progress(range(4), desc="x", disable=True)) == 6
    assert not caplog.records and capsys.readouterr().err == ""


def test_a_terminal_gets_a_text_bar_on_stderr(monkeypatch, capsys):
    monkeypatch.setenv("FINDER_PROGRESS", "text")
    for _ in progress(range(5), desc="warming cache", unit="stock"):
        pass
    err = capsys.readouterr().err
    assert "warming cache" in err and "5/5" in err


def test_auto_outside_a_kernel_follows_stderr(monkeypatch):
    monkeypatch.delenv("FINDER_PROGRESS", raising=False)

    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.setattr(_progress.sys, "stderr", Tty(True))
    assert mode() == "text"
    monkeypatch.setattr(_progress.sys, "stderr", Tty(False))
    assert mode() == "off"  # a pipe or a log file gets no bar
    monkeypatch.setenv("FINDER_PROGRESS", "widgets?")
    assert mode() == "off"  # an unknown value decides automatically (and logs a warning)


@pytest.mark.slow
def test_in_a_real_kernel_widgets_only_when_a_notebook_server_started_it():
    """One real ipykernel process: no server variable (papermill's case) -> off; JupyterLab's -> widget bars."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        out: list[str] = []

        def run(code: str) -> None:
            kc.execute_interactive(code, timeout=120, output_hook=lambda m: out.append(
                m["content"].get("text", "")) if m["msg_type"] == "stream" else None)

        run("import os\nos.environ.pop('FINDER_PROGRESS', None)\nos.environ.pop('JPY_SESSION_NAME', None)\n"
            "os.environ.pop('VSCODE_PID', None)\nfrom finder._progress import mode, progress\nprint(mode())")
        run("os.environ['JPY_SESSION_NAME'] = '/home/u/02_scan.ipynb'\nb = progress(total=2, desc='bars')\n"
            "print(mode(), type(b).__module__)\nb.close()")
        text = "".join(out).split()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert text[0] == "off"
    assert text[1:] == ["widget", "tqdm.notebook"]
