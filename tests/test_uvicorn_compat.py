"""Proof with a real web server: an old-style FastAPI backend under ``uvicorn --workers 4``.

``tests/_uvicorn_app.py`` uses ``finder.compat.api`` exactly as the old backend
used ``kiwoom_api.api``.  It runs as a real ``uvicorn --workers 4`` process
against a real simulator server (Kiwoom's 5/s limit per api-id, burst 2, and
only the configured app key accepted), configured through the old
environment names.  Everything counted here is counted at the simulator.

Checks: every worker gives identical answers; after one warm-up, no ka10081
request reaches the simulator from any worker, nor after uvicorn restarts;
no rate-limit rejection; one token for all workers and both runs.
Readiness is polled with bounded loops; nothing depends on timing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

SIM_NOW = "2025-11-28T20:30:00+09:00"
APP_KEY, APP_SECRET = "uvicorn-app-key-7f21", "uvicorn-secret-93ab"
WORKERS = 4
TESTS = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Uvicorn:
    """``uvicorn _uvicorn_app:app --workers 4`` in its own process group; stopped by its own pid."""

    def __init__(self, env: dict, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "_uvicorn_app:app", "--app-dir", str(TESTS), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(WORKERS), "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, attempts: int = 600) -> set[int]:
        """Poll /health (bounded) until every worker has answered; return their pids."""
        seen: set[int] = set()
        for _ in range(attempts):
            if self.proc.poll() is not None:
                raise AssertionError(f"uvicorn exited with {self.proc.returncode}; see {self.log.name}")
            try:
                r = httpx.get(self.url + "/health", timeout=5)  # a new connection each time
                seen.add(r.json()["worker"])
                if len(seen) == WORKERS:
                    return seen
            except (httpx.TransportError, ValueError):
                time.sleep(0.2)
        raise AssertionError(f"only {len(seen)} of {WORKERS} workers answered /health")

    def every_worker(self, path: str, attempts: int = 400) -> dict[int, dict]:
        """GET ``path`` on new connections until every worker has answered it (bounded)."""
        answers: dict[int, dict] = {}
        for _ in range(attempts):
            r = httpx.get(self.url + path, timeout=120)
            assert r.status_code == 200, r.text[:500]
            body = r.json()
            answers.setdefault(body.pop("worker"), body)
            if len(answers) == WORKERS:
                return answers
        raise AssertionError(f"{path}: only {len(answers)} of {WORKERS} workers answered in {attempts} requests")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to the uvicorn master: it stops its workers
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)  # the group this test started, by its id
                self.proc.wait(timeout=30)
        self.log.close()


def _get(url: str) -> dict:
    r = httpx.get(url, timeout=180)
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    body.pop("worker")
    return body


def test_old_backend_under_uvicorn_workers(make_sim, tmp_path, capsys):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    sim = make_sim(rate=5.0, burst=2, credentials={APP_KEY: APP_SECRET})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIWOOM_", "FINDER_"))}
    env.update({"APP_KEY": APP_KEY, "APP_SECRET": APP_SECRET, "API_BASE": sim.url,  # the old names
                "FINDER_CACHE_DIR": str(tmp_path / "cache"), "FINDER_STATE_DIR": str(tmp_path / "state"),
                "FINDER_NOW": SIM_NOW, "FINDER_RATE": "4",
                "PYTHONPATH": os.pathsep.join([str(TESTS.parent), env.get("PYTHONPATH", "")])})
    scan = "/scan?market=KOSPI&limit=8&count=120"
    histories = ["/history/{code}?count=300&base_dt=20250901", "/history/{code}?count=700&base_dt=20240315"]
    counts: dict[str, dict] = {}

    def snapshot(name: str) -> dict:
        st = sim.stats()
        counts[name] = {"requests": st["requests"], "token_issues": st["token_issues"],
                        "rate_limited": st["total_rate_limited"], "auth_failures": st["auth_failures"]}
        return counts[name]

    server = Uvicorn(env, tmp_path / "uvicorn.log")
    try:
        server.wait_ready()
        sim.reset_stats()
        # -- cold: one warm-up pass (the first worker to get each request fetches) --
        first = _get(server.url + scan)
        codes = [p["code"] for p in first["picks"]]
        assert len(codes) >= 5 and all(len(p["date"]) == 8 for p in first["picks"])
        hist = {h.format(code=c): _get(server.url + h.format(code=c)) for c in codes[:2] for h in histories}
        cold = snapshot("cold")
        assert cold["requests"].get("ka10081", 0) > 0

        # -- warm: every worker answers every request, identically, with no new ka10081 request --
        sim.reset_stats()
        for path, expected in [(scan, first), *hist.items()]:
            answers = server.every_worker(path)
            for body in answers.values():
                assert body == expected, path
        warm = snapshot("warm")
    finally:
        server.stop()

    # -- restart: a new uvicorn over the same cache folder --
    server = Uvicorn(env, tmp_path / "uvicorn.log")
    try:
        server.wait_ready()
        sim.reset_stats()
        for path, expected in [(scan, first), *hist.items()]:
            for body in server.every_worker(path).values():
                assert body == expected, path
        restart = snapshot("restart")
    finally:
        server.stop()

    with capsys.disabled():
        print("\nuvicorn --workers 4, requests at the simulator:", json.dumps(counts))
    assert warm["requests"].get("ka10081", 0) == 0
    assert restart["requests"].get("ka10081", 0) == 0
    assert cold["rate_limited"] == warm["rate_limited"] == restart["rate_limited"] == 0
    assert cold["token_issues"] == 1 and warm["token_issues"] == 0 and restart["token_issues"] == 0
    assert cold["auth_failures"] == warm["auth_failures"] == restart["auth_failures"] == 0
    # Names, the ranking and the stock list come from the shared disk cache too.
    for phase in (warm, restart):
        assert phase["requests"] == {}, phase
