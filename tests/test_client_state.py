"""The raw client's layering, and its shared state: the token and the pacing slots.

* ``finder.client`` imports nothing from the cache (nor the data layer, the
  analysis layer or the simulator): an AST scan and a fresh interpreter.
* Token and pacing state live in a per-user folder keyed by (host, app key)
  (``FINDER_STATE_DIR``), not in the cache folder: two processes with the
  same key and different cache folders share one token and one pacing.
* Token lifetimes are wall-clock time, whatever ``FINDER_NOW`` says.

Counts come from the simulator's statistics endpoint (what reached the server).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from finder._exceptions import (
    APIError,
    AuthenticationError,
    InvalidRequestError,
    RateLimitError,
    StockNotFoundError,
)
from _support import APP_KEY, REPO, SECRET_KEY, client

SIM_NOW = "2025-11-28T20:30:00+09:00"
KST = dt.timezone(dt.timedelta(hours=9))
STOCK_LIST = ("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "KIWOOM_ENV", "FINDER_RATE"):
        monkeypatch.delenv(var, raising=False)


# -- layers point one way --------------------------------------------------------------------------
FORBIDDEN = ("finder.cache", "finder._cached", "finder.data", "finder.analysis", "finder.sim", "finder.plots",
             "finder.cli", "finder.report")


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against ``package``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from .. import cache` names a module too
    return out


def test_the_raw_client_imports_nothing_above_it():
    files = sorted((REPO / "finder" / "client").glob("*.py"))
    assert len(files) >= 10
    bad = {}
    for f in files:
        hits = sorted(m for m in _imports(f, "finder.client") if any(m == b or m.startswith(b + ".") for b in FORBIDDEN))
        if hits:
            bad[f.name] = hits
    assert not bad, f"finder.client reaches up into higher layers: {bad}"
    # The scan itself sees the imports that exist (so an empty result means something).
    seen = _imports(REPO / "finder" / "_cached.py", "finder")
    assert "finder.client" in seen and any(m.startswith("finder.cache") for m in seen)


def test_importing_the_raw_client_loads_no_cache():
    code = ("import sys, json, finder.client; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('finder.cache', 'finder.sim', "
            "'finder.analysis')))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_cache_false_is_the_raw_clients_behaviour(sim, tmp_path, sim_market):
    code = sim_market.codes[0]
    with client(sim, tmp_path / "c", cache=False) as api:
        sim.reset_stats()
        a = api.get_ohlcv(code, 30, "2025-10-01")
        b = api.raw.get_ohlcv(code, 30, "2025-10-01")
        assert a.equals(b)
        assert sim.stats()["requests"]["ka10081"] == 2          # both fetched: no cache in between
        assert not (tmp_path / "c").exists()                    # nothing written to the cache folder
    with client(sim, tmp_path / "d") as cached:
        sim.reset_stats()
        assert cached.get_ohlcv(code, 30, "2025-10-01").equals(a)
        n = sim.stats()["requests"]["ka10081"]
        assert cached.get_ohlcv(code, 30, "2025-10-01").equals(a)
        assert sim.stats()["requests"]["ka10081"] == n          # the wrapper's cache answered


def test_the_raw_client_has_no_simulator_fallback(tmp_path):
    from finder import KiwoomAPI
    from finder._exceptions import InvalidInputError
    from finder.client import KiwoomClient

    with pytest.raises(InvalidInputError, match="no Kiwoom credentials"):
        KiwoomClient()
    api = KiwoomAPI(cache=False, cache_dir=tmp_path / "c")   # the built-in simulator is chosen here
    assert api.simulated and api.identity == "simulator"
    api.close()


# -- decoding by a table -------------------------------------------------------------------------------
def _resp(status: int, body, history=()) -> httpx.Response:
    r = httpx.Response(status, json=body) if not isinstance(body, bytes) else httpx.Response(status, content=body)
    r.history = list(history)
    return r


@pytest.mark.parametrize("status,body,want", [
    (200, {"return_code": 2, "return_msg": "입력 값 오류 [8030:실전/모의 환경]"}, AuthenticationError),
    (200, {"return_code": 3, "return_msg": "[8005:Token이 유효하지 않습니다]"}, AuthenticationError),
    (200, {"return_code": 5, "return_msg": "[1634:too many codes]"}, RateLimitError),
    (200, {"return_code": 5, "return_msg": "[1687:no retry]"}, RateLimitError),
    (200, {"return_code": 2, "return_msg": "[1511:필수 입력 값]"}, InvalidRequestError),
    (200, {"return_code": 7, "return_msg": "[1902:종목 정보가 없습니다]"}, StockNotFoundError),
    (200, {"return_code": 20, "return_msg": "rejected"}, APIError),
    (200, {"return_code": 5, "return_msg": "[1700:허용된 요청 개수를 초과]"}, "retry"),
    (429, {"return_code": 5, "return_msg": "[1700:허용된 요청 개수를 초과]"}, "retry"),
    (503, b"<html>maintenance</html>", "retry"),
    (200, b"<html>maintenance</html>", "retry"),
    (200, ["not", "an", "object"], "retry"),
])
def test_decode_maps_answers_by_the_table(status, body, want):
    from finder.client._decode import Transient, decode

    if want == "retry":
        with pytest.raises(Transient):
            decode(_resp(status, body), "ka10081")
    else:
        with pytest.raises(want) as err:
            decode(_resp(status, body), "ka10081")
        assert type(err.value) is want
        assert err.value.return_code == body["return_code"]


def test_decode_success_and_a_second_refusal():
    from finder.client._decode import decode

    data, headers = decode(httpx.Response(200, json={"return_code": 0, "x": 1}, headers={"Cont-Yn": "N"}), "ka10081")
    assert data["x"] == 1 and headers["cont-yn"] == "N"
    refused = {"return_code": 3, "return_msg": "[8005:Token이 유효하지 않습니다]"}
    with pytest.raises(AuthenticationError, match="refused again right after a re-issue"):
        decode(_resp(200, refused, history=[_resp(200, refused)]), "ka10081")


# -- the state folder -------------------------------------------------------------------------------------
def test_state_folder_follows_finder_state_dir_and_the_platform(monkeypatch, tmp_path):
    from finder.client._state import key_folder, state_root

    monkeypatch.setenv("FINDER_STATE_DIR", str(tmp_path / "s"))
    assert state_root() == (tmp_path / "s").resolve()
    a = key_folder("http://h:1", APP_KEY)
    assert a.parent == state_root() and APP_KEY not in a.name
    assert key_folder("http://h:1/", APP_KEY) == a                    # same host
    assert key_folder("http://h:2", APP_KEY) != a                     # another host
    assert key_folder("http://h:1", APP_KEY + "x") != a               # another key
    monkeypatch.delenv("FINDER_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert state_root() == tmp_path / "xdg" / "finder"


def test_state_does_not_depend_on_the_cache_folder(sim, tmp_path, sim_market):
    with client(sim, tmp_path / "a", cache=False) as a, client(sim, tmp_path / "b", cache=False) as b:
        assert a.raw.state_folder == b.raw.state_folder
        assert a.raw.state_folder.parent == Path(os.environ["FINDER_STATE_DIR"]).resolve()
        a.request(*STOCK_LIST)
        b.request(*STOCK_LIST)
        folder = a.raw.state_folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "token.json").stat().st_mode) == 0o600
    assert (folder / "pace-ka10099.slot").exists()
    assert sim.stats()["token_issues"] == 1


def test_state_folder_built_under_a_loose_umask_is_owner_only(sim, tmp_path):
    old = os.umask(0o002)
    try:
        with client(sim, tmp_path / "c", cache=False) as api:
            api.request(*STOCK_LIST)
            folder = api.raw.state_folder
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "token.json").stat().st_mode) == 0o600


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_an_unsafe_state_folder_is_not_used(sim, tmp_path, caplog):
    from finder.client._state import key_folder

    folder = key_folder(sim.url, APP_KEY)
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    caplog.set_level(logging.WARNING)
    with client(sim, tmp_path / "c", cache=False) as api:
        api.request(*STOCK_LIST)
        api.request(*STOCK_LIST)
        assert api._tokens.peek() is not None
    assert not (folder / "token.json").exists()                  # the token was never written there
    assert "open to group or others" in caplog.text
    assert sim.stats()["token_issues"] == 1                      # kept in the process instead


# -- token lifetimes are wall-clock time ------------------------------------------------------------------
def test_a_clock_override_days_ahead_does_not_re_issue_tokens(make_sim, tmp_path, monkeypatch):
    # A server on the wall clock (as Kiwoom is); finder's clock three days ahead of it.
    wall = dt.datetime.now(KST).replace(microsecond=0)
    s = make_sim(now=wall.isoformat(), frozen=False)
    monkeypatch.setenv("FINDER_NOW", (wall + dt.timedelta(days=3)).isoformat())
    with client(s, tmp_path / "c", cache=False) as api:
        for _ in range(5):
            api.request(*STOCK_LIST)
    st = s.stats()
    assert st["requests"]["ka10099"] == 5
    assert st["token_issues"] == 1 and st["auth_failures"] == 0


@pytest.mark.parametrize("finder_now", [SIM_NOW, None], ids=["finder-clock-matches", "no-clock-explains"])
def test_a_server_clock_in_the_past_does_not_re_issue_tokens(sim, tmp_path, monkeypatch, finder_now):
    # The simulator is frozen at SIM_NOW, long before the wall clock: its expires_dt is "past".
    if finder_now is None:
        monkeypatch.delenv("FINDER_NOW")
    with client(sim, tmp_path / "c", cache=False) as api:
        for _ in range(4):
            api.request(*STOCK_LIST)
    st = sim.stats()
    assert st["token_issues"] == 1 and st["auth_failures"] == 0


def test_token_lifetime_rules(monkeypatch):
    from finder.client._token import ASSUMED_LIFETIME, Token, lifetime_clock

    issued = 1_900_000_000.0                                         # 2030-03-17, wall clock
    kiwoom = dt.datetime.fromtimestamp(issued + 86400, KST)
    assert lifetime_clock(kiwoom, issued) == ("wall", 86400)         # Kiwoom's clock is the wall clock
    past = dt.datetime(2025, 11, 29, 20, 30, tzinfo=KST)            # a simulator frozen at 2025-11-28 20:30
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    assert lifetime_clock(past, issued) == ("finder", 86400)
    monkeypatch.setenv("FINDER_NOW", "2025-12-05T00:00:00+09:00")    # no clock explains it
    assert lifetime_clock(past, issued) == ("assumed", ASSUMED_LIFETIME)
    # A wall-clock token ignores FINDER_NOW, however far ahead it is.
    t = Token("v", kiwoom, issued=issued)
    monkeypatch.setenv("FINDER_NOW", "2031-01-01T00:00:00+09:00")
    assert t.fresh(now=issued + 3600) and not t.fresh(now=issued + 86400 - 60)
    again = Token.from_json(t.to_json().decode())
    assert (again.value, again.clock, again.lifetime, again.issued) == ("v", "wall", 86400, issued)
    # A finder-clock token follows FINDER_NOW (a simulator moved forward with it).
    monkeypatch.setenv("FINDER_NOW", SIM_NOW)
    sim_token = Token("s", past, issued=issued)
    assert sim_token.clock == "finder" and sim_token.fresh()
    monkeypatch.setenv("FINDER_NOW", "2025-12-01T20:30:00+09:00")
    assert not sim_token.fresh()


# -- two processes, one app key, different cache folders --------------------------------------------------
_ALTERNATING = """
import json, os, sys
from finder import KiwoomAPI
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache=False,
                cache_dir=os.environ["T_CACHE"], rate=float(os.environ["T_RATE"]))
print(json.dumps({"ready": True, "state": str(api.raw.state_folder)}), flush=True)
for line in sys.stdin:
    code = line.strip()
    if not code:
        break
    df = api.get_ohlcv(code, 20, "2025-10-01")
    print(json.dumps({"code": code, "rows": len(df)}), flush=True)
"""


def test_two_processes_with_different_cache_folders_share_one_token_and_pacing(make_sim, tmp_path, sim_market):
    # Kiwoom-like: no burst.  Each process paces at 1.5/s; if they paced separately, a request
    # right after the other process's would be refused (HTTP 429) by the 5/s, burst-1 limit.
    s = make_sim(rate=5.0, burst=1)
    codes = [c for c in sim_market.codes if sim_market.info(c).listed < pd.Timestamp("2020-01-01")][:8]
    procs = []
    for name in ("a", "b"):
        env = dict(os.environ, T_KEY=APP_KEY, T_SECRET=SECRET_KEY, T_URL=s.url, T_RATE="1.5",
                   T_CACHE=str(tmp_path / f"cache-{name}"))
        procs.append(subprocess.Popen([sys.executable, "-c", _ALTERNATING], env=env, cwd=str(REPO), text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        hello = [json.loads(p.stdout.readline()) for p in procs]
        assert hello[0]["state"] == hello[1]["state"]               # one state folder for both
        s.reset_stats()
        for i, code in enumerate(codes):                            # a, b, a, b, ...: each waits for the other
            p = procs[i % 2]
            p.stdin.write(code + "\n")
            p.stdin.flush()
            line = p.stdout.readline()
            assert line, p.stderr.read()[-3000:]
            assert json.loads(line) == {"code": code, "rows": 20}
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            assert p.wait(timeout=60) == 0, p.stderr.read()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    st = s.stats()
    assert st["requests"]["ka10081"] == len(codes)
    assert st["token_issues"] == 1                                  # one token for both processes
    assert st["auth_failures"] == 0                                 # nobody knocked the other out
    assert st["total_rate_limited"] == 0                            # shared pacing: no 429
    assert (Path(hello[0]["state"]) / "pace-ka10081.slot").exists()
