"""The three notebooks run top to bottom with papermill against the simulator, and `finder demo` works twice.

Each kernel is a fresh process with no Kiwoom credentials (so the built-in
simulator serves the data) and a cache folder of its own under pytest's
tmp_path, i.e. a fresh machine's first run.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_quickstart", "02_scan", "03_backtest"]


def outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and not outputs(nb)
    assert all(c.get("execution_count") is None for c in code)
    # papermill injects parameters after the cell tagged "parameters"
    assert any("parameters" in c.metadata.get("tags", []) for c in code)


@pytest.fixture
def simulator_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("KIWOOM_"):
            monkeypatch.delenv(key)
    cache = tmp_path / "cache"
    monkeypatch.setenv("FINDER_CACHE_DIR", str(cache))
    return cache


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, simulator_env, tmp_path):
    import papermill as pm

    out = tmp_path / f"{name}.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), cwd=str(NOTEBOOKS), progress_bar=False,
                        kernel_name="python3", execution_timeout=600)
    nb = nbformat.read(out, as_version=4)
    outs = outputs(nb)
    assert not [o for o in outs if o.output_type == "error"]
    # real charts came out (matplotlib Figures rendered inline as PNG)
    assert [o for o in outs if "image/png" in o.get("data", {})]


@pytest.mark.slow
def test_demo_report_then_a_warm_second_run(simulator_env, tmp_path, capsys):
    from finder.report import run_demo

    reports = tmp_path / "reports"
    kw = dict(start="2025-09-01", end="2025-09-05", universe="KOSPI", horizons=(1, 5))
    first = run_demo(reports, **kw)
    d = first["report_dir"]
    assert d.parent == reports
    assert (d / "03_backtest.ipynb").is_file() and first["html"].is_file()
    assert "<html" in first["html"].read_text()[:2000].lower()
    assert {c.name for c in first["charts"]} >= {"backtest.png"}
    assert all(c.stat().st_size > 10_000 for c in first["charts"])
    assert sum(first["stats"]["requests"].values()) > 0  # a cold cache went upstream
    assert list(first["summary"].index) == [1, 5]
    assert first["previous"] is None

    second = run_demo(reports, **kw)
    assert second["report_dir"] != d
    assert sum(second["stats"]["requests"].values()) == 0  # everything from the disk cache
    assert second["previous"]["report_dir"] == d
    assert second["summary"].equals(first["summary"])
    printed = capsys.readouterr().out
    assert "Upstream requests this run: 0" in printed
    assert f"Report: {second['html']}" in printed
    assert "Summary per horizon" in printed
