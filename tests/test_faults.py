"""Every simulator fault, through the cached ``get_ohlcv`` and ``get_panel``, over real HTTP.

For each fault kind the tests show one of two outcomes:

* the call succeeds after bounded retries, with the right data, and what it
  cached is right (a new process would get the same answer without a request);
* or it raises the right typed error from ``finder._exceptions``, naming what
  went wrong, after a bounded number of requests (bounded requests times the
  client's ``timeout`` and ``backoff`` bound the time; wall-clock time itself
  is only measured by ``bench/``),

and in both cases no cache entry is written from a failed or partial walk
(every stored walk equals the server's complete answer, and no pointer or
history exists for a failed stock), and the next call after the fault clears
returns data equal to the simulator's oracle (adjusted values within 1 KRW).

The simulator is the real ``Simulator`` on 127.0.0.1 (``drop`` only truly cuts
a connection there).  Faults are armed over HTTP (``POST /_sim/faults``), or
with ``arm_at`` when they must hit page 2 of a walk.
"""

from __future__ import annotations

import httpx
import pytest

from finder._exceptions import (
    AuthenticationError,
    FinderError,
    RateLimitError,
    StockNotFoundError,
    TransportError,
)
from finder.sim import FAULT_KINDS
from _reliability import (
    SIM_NOW,
    arm_at,
    assert_matches_oracle,
    assert_walks_complete,
    cache_files,
    clean_env,
    fired,
    forget_stores,
)
from _support import client, full_history_codes, ka10081

D = "2025-10-01"
COUNT = 700            # with the sessions up to the anchor, two 600-row pages per walk
RETRIES = 3
FAST = dict(max_retries=RETRIES, backoff=0.01, timeout=0.5)


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    clean_env(monkeypatch, tmp_path / "cache")
    forget_stores()
    yield
    forget_stores()


@pytest.fixture
def codes(sim_market):
    return full_history_codes(sim_market, "2019-01-01", SIM_NOW[:10], 3)


def arm(sim, **spec) -> None:
    """Arm a fault the way another process would: over HTTP."""
    r = httpx.post(sim.url + "/_sim/faults", json=spec)
    assert r.status_code == 200, r.text


def baseline_requests(sim, tmp_path, code) -> int:
    """What the same cold call costs without any fault (measured, not assumed)."""
    with client(sim, tmp_path / "baseline", **FAST) as api:
        sim.reset_stats()
        api.get_ohlcv(code, COUNT, D)
        n = ka10081(sim)
    forget_stores()
    return n


def test_every_fault_kind_is_covered():
    covered = set(ABSORBED) | set(FAILING) | {"extra_fields"}
    assert covered == set(FAULT_KINDS)


# -- faults that bounded retries absorb ---------------------------------------------------------
# kind -> (arming, how many extra ka10081 requests each firing costs)
ABSORBED = {
    "http_error": (dict(count=2), 1),
    "slow": (dict(count=1, seconds=1.0), 1),        # 1 s > the client's 0.5 s timeout
    "drop": (dict(count=2), 1),
    "maintenance": (dict(count=2), 1),
    "rate_storm": (dict(count=RETRIES), 1),         # exactly as many 429s as retries allow
    "token_invalidate": (dict(count=1), 1),         # page 2 refused: one re-issue, page 2 again
    "repeat_key": (dict(count=1), 1),               # page 1 served again, then the walk goes on
    "extra_fields": (dict(probability=1.0), 0),     # unknown row keys are ignored
}


@pytest.mark.parametrize("kind", list(ABSORBED))
def test_fault_absorbed_by_bounded_retries(kind, sim, sim_market, codes, tmp_path):
    spec, cost = ABSORBED[kind]
    code = codes[0]
    base = baseline_requests(sim, tmp_path, code)
    root = tmp_path / "cache"
    sim.reset_stats()
    arm(sim, kind=kind, api_id="ka10081", **spec)
    with client(sim, root, **FAST) as api:
        df = api.get_ohlcv(code, COUNT, D)
    assert_matches_oracle(df, sim_market, code, D, COUNT)
    n = fired(sim, kind)
    assert n >= 1, f"the {kind} fault never fired"
    assert ka10081(sim) == base + cost * n
    if kind == "token_invalidate":
        # The baseline's token is shared (same key and host; the cache folder does not matter):
        # the only issue is the one re-issue, not one per retry.
        assert sim.stats()["token_issues"] == 1
    # What was cached is complete and right: a new process serves it without a request.
    assert assert_walks_complete(root, sim_market) >= 2
    assert [p.stem for p in cache_files(root).pointers] == [code]
    forget_stores()
    sim.faults.clear()
    sim.reset_stats()
    with client(sim, root, **FAST) as api:
        again = api.get_ohlcv(code, COUNT, D)
    assert ka10081(sim) == 0
    assert again.equals(df)


# -- faults that outlast the retries, or end a walk early ---------------------------------------------
# kind -> (arming, error type, words the message must hold)
FAILING = {
    "http_error": (dict(probability=1.0), TransportError, ["gave up after", "HTTP 50"]),
    "slow": (dict(probability=1.0, seconds=1.0), TransportError, ["gave up after", "timed out"]),
    "drop": (dict(probability=1.0), TransportError, ["gave up after", "connection failed"]),
    "maintenance": (dict(probability=1.0), TransportError, ["gave up after", "maintenance"]),
    "rate_storm": (dict(probability=1.0), RateLimitError, ["gave up after", "429"]),
    "token_invalidate": (dict(probability=1.0), AuthenticationError, ["8005", "refused again"]),
    "empty_page": (dict(probability=1.0), StockNotFoundError, ["no daily bars for {code}"]),
    "repeat_key": (dict(probability=1.0), TransportError, ["{code}", "next-key repeated", "nothing was cached"]),
    "blank_rows": (dict(probability=1.0), StockNotFoundError, ["no daily bars for {code}"]),
}


def _assert_nothing_partial(root, sim_market, failed_code) -> None:
    files = cache_files(root)
    assert failed_code not in {p.stem for p in files.pointers}
    assert failed_code not in files.codes("history")
    assert_walks_complete(root, sim_market)  # a walk stored at all is a whole one
    assert not files.temp


def _recovers(sim, sim_market, root, code) -> None:
    sim.faults.clear()
    forget_stores()
    with client(sim, root, **FAST) as api:
        df = api.get_ohlcv(code, COUNT, D)
    assert_matches_oracle(df, sim_market, code, D, COUNT)
    assert_walks_complete(root, sim_market)
    assert code in {p.stem for p in cache_files(root).pointers}


# token_invalidate fires only on continuation requests (page 2 on), by definition
CASES = [(k, w) for k in FAILING for w in ("first page", "page 2") if (k, w) != ("token_invalidate", "first page")]


@pytest.mark.parametrize("kind,where", CASES)
def test_fault_raises_a_typed_error_caches_nothing_and_clears(kind, where, sim, sim_market, codes, tmp_path):
    spec, error, words = FAILING[kind]
    code = codes[1]
    root = tmp_path / "cache"
    sim.reset_stats()
    with client(sim, root, **FAST) as api:
        with arm_at(sim, 1 if where == "first page" else 2, kind, **spec):
            with pytest.raises(FinderError) as err:
                api.get_ohlcv(code, COUNT, D)
    if where == "page 2" and kind in ("empty_page", "blank_rows"):
        # after a good page 1, an empty page is a walk cut short, not an unknown stock
        error, words = TransportError, ["{code}", "stopped early", "nothing was cached"]
    assert type(err.value) is error, f"{kind} at {where}: {type(err.value).__name__}: {err.value}"
    text = str(err.value)
    for w in words:
        assert w.format(code=code) in text, (w, text)
    # bounded: at most one attempt per retry on the failing page, plus the pages before it
    before = 0 if where == "first page" else 1
    assert ka10081(sim) <= before + RETRIES + 1, sim.stats()["requests"]
    assert sim.stats()["token_issues"] <= 2
    _assert_nothing_partial(root, sim_market, code)
    _recovers(sim, sim_market, root, code)


def test_a_failed_adjusted_walk_keeps_the_complete_raw_walk_only(sim, sim_market, codes, tmp_path):
    """The raw walk (2 pages) completes, the adjusted walk's page 2 fails: only the whole raw walk is kept."""
    code = codes[2]
    root = tmp_path / "cache"
    base = baseline_requests(sim, tmp_path, code)
    assert base == 4  # two walks of two pages: the premise of this test
    sim.reset_stats()
    with client(sim, root, **FAST) as api:
        with arm_at(sim, 4, "http_error", probability=1.0):
            with pytest.raises(TransportError):
                api.get_ohlcv(code, COUNT, D)
    files = cache_files(root)
    assert len(files.of("walk")) == 1 and not files.of("history") and not files.pointers
    assert assert_walks_complete(root, sim_market) == 1
    sim.reset_stats()
    _recovers(sim, sim_market, root, code)
    assert ka10081(sim) == 2  # only the adjusted walk was fetched again


# -- get_panel: one stock fails, the others are served and the failure is reported -------------------
# kind -> arming that exhausts exactly the first stock's attempts
ONE_STOCK = {
    "http_error": dict(count=RETRIES + 1),
    "slow": dict(count=RETRIES + 1, seconds=1.0),
    "drop": dict(count=RETRIES + 1),
    "maintenance": dict(count=RETRIES + 1),
    "rate_storm": dict(count=RETRIES + 1),
    "token_invalidate": dict(count=2),   # page 2, and page 2 again after the one re-issue
    "empty_page": dict(count=1),
    "repeat_key": dict(count=2),         # page 1 names itself, page 2 names itself: a loop
    "blank_rows": dict(count=1),
}


@pytest.mark.parametrize("kind", list(ONE_STOCK))
def test_get_panel_reports_the_failed_stock_and_serves_the_rest(kind, sim, sim_market, codes, tmp_path):
    from finder.cache._ohlcv import get_panel

    root = tmp_path / "cache"
    with client(sim, root, **FAST) as api:
        arm(sim, kind=kind, api_id="ka10081", **ONE_STOCK[kind])
        panel = get_panel(api, codes, COUNT, D, field="close", progress=False)
        assert fired(sim, kind) == ONE_STOCK[kind]["count"]
        missing = panel.attrs["missing"]
        assert list(missing) == [codes[0]], missing
        assert missing[codes[0]].split(":")[0] in {"TransportError", "RateLimitError", "AuthenticationError",
                                                  "StockNotFoundError"}
        assert list(panel.columns) == codes[1:]
        for c in codes[1:]:
            want = sim_market.bars(c, D).iloc[-COUNT:]
            got = panel[c].dropna()
            assert got.index.equals(want.index) and (abs(got - want.close) <= 1).all()
        _assert_nothing_partial(root, sim_market, codes[0])
        # the fault has cleared: the next call fetches only the stock that failed
        sim.reset_stats()
        again = get_panel(api, codes, COUNT, D, field="close", progress=False)
    assert not again.attrs["missing"] and list(again.columns) == codes
    assert ka10081(sim) == 4
    for c in codes:
        want = sim_market.bars(c, D).iloc[-COUNT:]
        assert (abs(again[c].dropna() - want.close) <= 1).all()


def test_faults_on_the_token_call_itself(sim, sim_market, codes, tmp_path, monkeypatch):
    """Transport faults hit au10001 too: bounded retries there as well, then the data call goes on."""
    arm(sim, kind="http_error", count=2, api_id="au10001")
    with client(sim, tmp_path / "cache", **FAST) as api:
        df = api.get_ohlcv(codes[0], 50, D)
    assert_matches_oracle(df, sim_market, codes[0], D, 50)
    assert sim.stats()["requests"]["au10001"] == 3 and sim.stats()["token_issues"] == 1
    arm(sim, kind="http_error", probability=1.0, api_id="au10001")
    monkeypatch.setenv("FINDER_STATE_DIR", str(tmp_path / "other-state"))  # a new state folder: no token there
    with client(sim, tmp_path / "other", **FAST) as api:
        with pytest.raises(TransportError, match="au10001: gave up after 4 attempts"):
            api.get_ohlcv(codes[1], 50, D)
    assert not cache_files(tmp_path / "other").pointers
