"""notebooks/04_sweep.ipynb: committed without outputs, and runs top to bottom under papermill on the simulator."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks" / "04_sweep.ipynb"


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_sweep_notebook_is_committed_without_outputs():
    nb = nbformat.read(NB, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and not _outputs(nb) and all(c.get("execution_count") is None for c in code)
    assert any("parameters" in c.metadata.get("tags", []) for c in code)


@pytest.mark.slow
def test_sweep_notebook_runs_and_shows_heatmap_and_verdict(monkeypatch, tmp_path):
    import papermill as pm

    for key in list(os.environ):
        if key.startswith("KIWOOM_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "04_sweep.ipynb"
    pm.execute_notebook(str(NB), str(out), cwd=str(NB.parent), progress_bar=False, kernel_name="python3",
                        execution_timeout=600, parameters={"report_dir": str(tmp_path)})
    nb = nbformat.read(out, as_version=4)
    outs = _outputs(nb)
    assert not [o for o in outs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
                     for o in outs)
    assert "best of 8: Sharpe" in text and "deflated Sharpe p = " in text and "PBO" in text
    assert (tmp_path / "sweep_heatmap.png").stat().st_size > 10_000
    assert [o for o in outs if "image/png" in o.get("data", {})]
