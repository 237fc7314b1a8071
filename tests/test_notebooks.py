"""The three notebooks run top to bottom with papermill against the simulator, and `finder demo` works twice.

Each kernel is a fresh process with no Kiwoom credentials (so the built-in
simulator serves the data) and a cache folder of its own under pytest's
tmp_path, i.e. a fresh machine's first run.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import numpy as np
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


# 03_backtest is the demo report's notebook: the demo tests below run it top to bottom (twice) and check more.
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n != "03_backtest"])
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


DEMO_KW = dict(start="2025-09-01", end="2025-09-05", universe="KOSPI", horizons=(1, 5))


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory):
    """One cold `finder demo` run (fresh cache, no credentials), shared by the tests below."""
    from finder.report import run_demo

    base = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("KIWOOM_"):
                mp.delenv(key)
        mp.setenv("FINDER_CACHE_DIR", str(base / "cache"))
        result = run_demo(base / "reports", quiet=True, **DEMO_KW)
        yield result, mp


@pytest.mark.slow
def test_demo_report_then_a_warm_second_run(first_demo, capsys):
    from finder.report import run_demo

    first, _ = first_demo
    d = first["report_dir"]
    reports = d.parent
    assert (d / "03_backtest.ipynb").is_file() and first["html"].is_file()
    assert "<html" in first["html"].read_text()[:2000].lower()
    assert {c.name for c in first["charts"]} >= {"backtest.png", "tearsheet.png"}
    assert all(c.stat().st_size > 10_000 for c in first["charts"])
    assert sum(first["stats"]["requests"].values()) > 0  # a cold cache went upstream
    assert list(first["summary"].index) == [1, 5]
    assert first["previous"] is None
    headline = first["stats"]["headline"]["strategy"]
    assert headline["trades"] == str(int(first["summary"].loc[5, "count"]))

    second = run_demo(reports, **DEMO_KW)
    assert second["report_dir"] != d
    assert sum(second["stats"]["requests"].values()) == 0  # everything from the disk cache
    assert second["previous"]["report_dir"] == d
    assert second["summary"].equals(first["summary"])
    printed = capsys.readouterr().out
    assert "Upstream requests this run: 0" in printed
    assert "the cache served everything this run" in printed
    assert f"Report: {second['html']}" in printed
    assert "Summary per horizon" in printed


# Runs in the page after load; its findings land in an attribute that --dump-dom returns.
_CHECK = r"""<script>
window.addEventListener("load", async () => {
  await document.fonts.ready;
  const imgs = [...document.images];
  // decoded = drawn onto a canvas with visible pixels (img.decode() never settles under --dump-dom)
  const painted = imgs.map(i => {
    if (!i.complete || i.naturalWidth === 0) return false;
    const c = document.createElement("canvas");
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(i, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    for (let k = 3; k < px.length; k += 4 * 97) if (px[k] > 0) return true;
    return false;
  });
  const text = document.body.innerText;
  document.body.setAttribute("data-finder-check", JSON.stringify({
    state: document.readyState,
    images: imgs.length,
    broken: painted.filter(ok => !ok).length,
    stderr: document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length,
    widgets: document.querySelectorAll('[data-mime-type*="widget"]').length,
    progress: /\d+%\|/.test(text) || /\d+\/\d+ \[\d\d:\d\d/.test(text),
    hangul: [...document.fonts].filter(f => f.family.includes("finder-hangul")).map(f => f.status),
    headline: text.includes("Headline") && text.includes("Best trades") && text.includes("Worst trades"),
  }));
});
</script>"""


@pytest.mark.slow
def test_the_report_in_a_real_browser(first_demo, tmp_path):
    import json
    import re

    from PIL import Image

    from finder._browser import dump_dom, find_chromium

    if find_chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have chromium: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium); CI installs it")
    first, _ = first_demo
    html = first["html"].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*src=[\"']https?://", html)  # self-contained: nothing from the network
    probe = tmp_path / "probe.html"
    at = html.lower().rfind("</body>")
    probe.write_text(html[:at] + _CHECK + html[at:], encoding="utf-8")
    dom = dump_dom(probe)
    found = re.search(r'data-finder-check="([^"]*)"', dom)
    assert found, "the page's load handler did not run"
    check = json.loads(found.group(1).replace("&quot;", '"'))
    assert check["state"] == "complete" and check["headline"]
    assert check["images"] >= 4 and check["broken"] == 0  # every chart decodes
    assert check["stderr"] == 0 and check["widgets"] == 0 and not check["progress"]
    assert check["hangul"] == ["loaded"]  # names render with the embedded font

    shot = first["screenshot"]
    assert shot is not None and shot.parent == first["report_dir"]
    with Image.open(shot) as im:
        im.load()
        assert im.size == (1280, 2400)
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # not a blank page
