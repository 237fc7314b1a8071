"""Four real processes start cold at the same moment: the ranking, the stock list and a quote are fetched once.

Each process builds ``finder.compat.KiwoomAPI()`` from the environment, then
waits at a file barrier (bounded polling, no sleeps to line things up) so
that all four ask together.  Counts are read at the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow

SIM_NOW = "2025-11-28T20:30:00+09:00"
WORKERS = 4

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from finder.compat import KiwoomAPI
    api = KiwoomAPI()
    gate = Path(sys.argv[1])
    (gate / f"ready-{os.getpid()}").touch()
    for _ in range(3000):
        if (gate / "go").exists():
            break
        time.sleep(0.01)
    else:
        raise SystemExit("no go signal")
    top = api.get_top_codes("KOSPI", 10)
    names = [api.get_stock_name(c) for c in top]
    quote = api.get_stock_quote(top[0])
    print(json.dumps({"top": top, "names": names, "quote": quote}))
""")


def test_cold_workers_fetch_shared_answers_once(make_sim, tmp_path):
    sim = make_sim(rate=5.0, burst=2)
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIWOOM_", "FINDER_", "APP_", "API_"))}
    env.update({"KIWOOM_APPKEY": "worker-key-1", "KIWOOM_SECRETKEY": "worker-secret-2", "KIWOOM_BASE_URL": sim.url,
                "FINDER_CACHE_DIR": str(tmp_path / "cache"), "FINDER_STATE_DIR": str(tmp_path / "state"),
                "FINDER_NOW": SIM_NOW, "FINDER_RATE": "4"})
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(gate)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(WORKERS)]
    try:
        for _ in range(6000):  # bounded: until every process is built and waiting
            if len(list(gate.glob("ready-*"))) == WORKERS or any(p.poll() is not None for p in procs):
                break
            time.sleep(0.05)
        sim.reset_stats()
        (gate / "go").touch()
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-3000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(o == outs[0] for o in outs)
    assert len(outs[0]["top"]) == 10 and all(outs[0]["names"]) and outs[0]["quote"]["current_price"] > 0
    st = sim.stats()
    assert st["pages"].get("ka10032") == 2      # the KOSPI ranking (two pages of 100), once for all four
    assert st["pages"].get("ka10099") == 3      # KOSPI, KOSDAQ and ETF lists, once for all four
    assert st["pages"].get("ka10095") == 1      # one quote, once
    assert st["token_issues"] == 1 and st["total_rate_limited"] == 0
