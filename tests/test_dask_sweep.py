"""finder.sweep on a Dask LocalCluster (2 worker processes, loopback): same table as a local run, bit for bit,
also when a worker dies mid-sweep; workers make no request and need no credentials or cache."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")

from distributed import Client, LocalCluster, WorkerPlugin  # noqa: E402

from finder.analysis.sweep import sweep_panels  # noqa: E402

from _sweep_support import band_screen, planted_panels  # noqa: E402

pytestmark = pytest.mark.slow


class KillOnFirstTask(WorkerPlugin):
    """The first task to start executing on any worker kills that worker's process (once: an O_EXCL marker)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish == "executing":
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(1)


class NoDataLayer(WorkerPlugin):
    """Point every Kiwoom and cache setting of the worker at nothing usable: any data access would fail."""

    def setup(self, worker) -> None:
        for k in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY"):
            os.environ.pop(k, None)
        os.environ["KIWOOM_BASE_URL"] = "http://127.0.0.1:9"
        os.environ["FINDER_CACHE_DIR"] = "/nonexistent/finder-cache"


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as lc:
        yield lc


def _run(client=None):
    panels = planted_panels(N=25, T=70)
    sessions = panels["close"].index[20:66]
    grid = {"lo": [-1.5, 0.0, 1.0], "take_profit": [None, 0.02], "stop_loss": [None, 0.02]}
    return sweep_panels(panels, band_screen, grid, sessions, horizons=(1, 2), lookback=21, blocks=4, client=client)


def test_dask_table_equals_local_table(cluster):
    local = _run()
    with Client(cluster) as client:
        client.register_plugin(NoDataLayer())
        remote = _run(client)
    pd.testing.assert_frame_equal(remote.table, local.table, check_exact=True)
    pd.testing.assert_frame_equal(remote.returns, local.returns, check_exact=True)
    assert remote.verdict() == local.verdict()


def test_a_worker_killed_mid_sweep_costs_only_its_tasks(cluster, tmp_path):
    local = _run()
    marker = tmp_path / "killed"
    with Client(cluster) as client:
        client.register_plugin(KillOnFirstTask(str(marker)))
        remote = _run(client)
    assert marker.exists(), "no worker was killed"
    pid = int(Path(marker).read_text())
    assert pid != os.getpid()
    pd.testing.assert_frame_equal(remote.table, local.table, check_exact=True)
