"""The panel store (finder/cache/_panel.py) behind get_panel, over real HTTP against the simulator.

Every answer served from a stored panel is compared with what ``get_ohlcv``
returns for each code (the per-stock path), and the ``attrs["panel"]`` record
says which path served it, so each test fails if the store is bypassed or
serves something else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _support import APP_KEY, REPO, SECRET_KEY, client, digest, full_history_codes

FIELDS = ["open", "high", "low", "close", "volume", "value"]
D = "2025-11-28"
N = 120


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "default"))
    monkeypatch.setenv("FINDER_NOW", "2025-11-28T20:30:00+09:00")
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "FINDER_RATE", "FINDER_LIVE_TTL",
                "FINDER_MAX_PANELS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def codes(sim_market):
    # Long-listed stocks (complete columns) plus a few that list or delist inside the window (gaps).
    base = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 24)
    gaps = [c for c in sim_market.codes if c not in base and sim_market.info(c).market != "ETF"
            and pd.Timestamp("2025-07-01") <= sim_market.info(c).listed <= pd.Timestamp("2025-11-01")][:2]
    return base + gaps


def panel(api, codes, count, day, field=FIELDS):
    from finder.cache._ohlcv import get_panel

    return get_panel(api, codes, count, day, field=field, progress=False)


def how(p) -> dict:
    first = p if isinstance(p, pd.DataFrame) else next(iter(p.values()))
    return first.attrs["panel"]


def assert_equals_get_ohlcv(api, got: dict, codes, count, day):
    """Each column equals get_ohlcv's bars for that code; NaN exactly where the stock has no bar."""
    index = None
    for c in codes:
        want = api.get_ohlcv(c, count, day)
        rows = got["close"][c].notna()
        assert list(got["close"].index[rows]) == list(want.index), c
        for f in FIELDS:
            col = got[f][c]
            assert np.array_equal(col[rows].to_numpy(dtype="float64"), want[f].to_numpy(dtype="float64")), (c, f)
            assert col[~rows].isna().all(), (c, f)
        index = want.index if index is None else index.union(want.index)
    assert got["close"].index.equals(index)  # the union of the stocks' dates, nothing more
    for c in codes:  # issue 14: volume is an integer wherever nothing is missing
        gaps = got["volume"][c].isna().any()
        assert got["volume"][c].dtype == (np.float64 if gaps else np.int64), c


def panel_dirs(root: Path) -> list[Path]:
    base = root / "finder" / "panels"
    return sorted(p for p in base.iterdir() if p.is_dir() and len(p.name) == 32) if base.is_dir() else []


# -- equality and slices ----------------------------------------------------------------------------------
def test_stored_panel_equals_get_ohlcv_for_every_code(sim, codes, tmp_path):
    with client(sim, tmp_path / "c") as api:
        first = panel(api, codes, N, D)
        assert how(first) == {"served": 0, "carried": 0, "per_stock": len(codes), "built": True}
        assert len(panel_dirs(tmp_path / "c")) == 1
        sim.reset_stats()
        again = panel(api, codes, N, D)
        assert how(again) == {"served": len(codes), "carried": 0, "per_stock": 0, "built": False}
        assert int(sim.stats()["requests"].get("ka10081", 0)) == 0
        for f in FIELDS:
            pd.testing.assert_frame_equal(first[f], again[f], check_freq=False)
        assert_equals_get_ohlcv(api, again, codes, N, D)
        assert again["volume"].dtypes.value_counts().get(np.dtype("int64"), 0) >= 20


def test_subsets_shorter_counts_and_earlier_dates_are_slices(sim, sim_market, codes, tmp_path):
    with client(sim, tmp_path / "c") as api:
        panel(api, codes, N, D)
        for sub, count, day in ((codes[3:23], N, D), (codes, 20, D), (codes[::-1], 60, "2025-10-15"),
                                (codes[:22], 5, "2025-09-01")):
            got = panel(api, sub, count, day)
            moved = [c for c in sub for e in sim_market.events(c)
                     if pd.Timestamp(day) < e.ex_date <= pd.Timestamp(D)]
            # stocks with a corporate action after ``day`` get their as-of prices per stock
            assert how(got) == {"served": len(sub) - len(set(moved)), "carried": 0, "per_stock": len(set(moved)), "built": False}
            assert list(got["close"].columns) == list(sub)
            assert_equals_get_ohlcv(api, got, sub, count, day)
        assert len(panel_dirs(tmp_path / "c")) == 1  # no slice wrote a panel


def test_a_deeper_request_rebuilds_and_supersedes(sim, codes, tmp_path):
    with client(sim, tmp_path / "c") as api:
        panel(api, codes, 40, D)
        old = panel_dirs(tmp_path / "c")
        deeper = panel(api, codes, N, D)
        assert how(deeper)["built"] and how(deeper)["per_stock"] == len(codes)
        now = panel_dirs(tmp_path / "c")
        assert len(now) == 1 and now != old  # the deeper panel serves everything the shallow one did
        assert how(panel(api, codes, 40, D))["served"] == len(codes)


def test_frames_never_alias_the_store(sim, codes, tmp_path):
    with client(sim, tmp_path / "c") as api:
        panel(api, codes, N, D)
        a = panel(api, codes, N, D)
        assert how(a)["served"] == len(codes)
        keep = {f: a[f].copy() for f in FIELDS}
        a["close"].iloc[:, :] = -1.0
        a["open"].loc[a["open"].index[0], codes[0]] = -5.0
        b = panel(api, codes, N, D)
        assert how(b)["served"] == len(codes)
        for f in FIELDS:
            pd.testing.assert_frame_equal(b[f], keep[f], check_freq=False)


# -- invalidation -----------------------------------------------------------------------------------------
def _set_clock(sim, monkeypatch, day) -> None:
    now = f"{pd.Timestamp(day).date()}T20:30:00+09:00"
    sim.set_now(now)
    monkeypatch.setenv("FINDER_NOW", now)


def test_refresh_and_a_corporate_action_invalidate_by_construction(sim, sim_market, codes, tmp_path, monkeypatch):
    ex = pd.Timestamp("2025-10-31")
    acting = [c for c in sim_market.codes if any(e.ex_date == ex for e in sim_market.events(c))][:4]  # ETF payouts
    assert acting, "the default market has actions on 2025-10-31"
    group = codes[:20] + acting
    _set_clock(sim, monkeypatch, "2025-10-30")
    with client(sim, tmp_path / "c") as api, client(sim, tmp_path / "oracle", cache=False) as oracle:
        panel(api, group, 60, "2025-10-30")
        assert how(panel(api, group, 60, "2025-10-30"))["served"] == len(group)
        before = panel_dirs(tmp_path / "c")
        _set_clock(sim, monkeypatch, "2025-10-31")
        import finder.cache

        finder.cache.refresh(group, progress=False, client=api)  # every pointer moves; 4 stocks have an action
        got = panel(api, group, 60, "2025-10-31")
        # the 20 without an action are carried forward from the old panel by their pointers' newest
        # bars; the 4 whose adjusted history changed are read per stock
        assert how(got) == {"served": 0, "carried": 20, "per_stock": len(acting), "built": True}
        assert_equals_get_ohlcv(api, got, group, 60, "2025-10-31")
        after = panel_dirs(tmp_path / "c")
        assert len(after) == 1 and after != before  # the stale panel was removed, not kept
        again = panel(api, group, 60, "2025-10-31")
        assert how(again)["served"] == len(group)
        assert_equals_get_ohlcv(api, again, group, 60, "2025-10-31")
        # The day before the action, from the new panel: the acting stocks need their as-of prices.
        old = panel(api, group, 50, "2025-10-30")
        assert how(old) == {"served": 20, "carried": 0, "per_stock": len(acting), "built": False}
        assert_equals_get_ohlcv(api, old, group, 50, "2025-10-30")
        for c in acting:  # and those are the simulator's own numbers as of that day
            want = oracle.get_ohlcv(c, 50, "2025-10-30")
            assert np.array_equal(old["close"][c].dropna().to_numpy(), want["close"].to_numpy()), c


def _panel_shape(root: Path) -> tuple[int, int]:
    (meta,) = [json.loads(json.loads((d / "meta.json").read_bytes())["body"]) for d in panel_dirs(root)]
    return len(meta["codes"]), len(meta["dates"])


def test_nightly_refreshes_carry_the_panel_forward(make_sim, sim_market, codes, tmp_path, monkeypatch):
    """Session after session, the panel is carried forward without loading histories, stays one panel of the
    same depth, and equals get_ohlcv and the simulator's own numbers; what a tail cannot cover goes per stock."""
    import finder.cache
    from finder import calendar

    days = [str(d.date()) for d in calendar.sessions_in_range("2025-10-01", "2025-10-30")]
    sim = make_sim(now=f"{days[0]}T20:30:00+09:00")
    root = tmp_path / "c"
    _set_clock(sim, monkeypatch, days[0])
    with client(sim, root) as api, client(sim, tmp_path / "oracle", cache=False) as oracle:
        panel(api, codes, N, days[0])
        shape = _panel_shape(root)
        for i, day in enumerate(days[1:4], start=1):  # three nights in a row
            _set_clock(sim, monkeypatch, day)
            finder.cache.refresh(codes, progress=False, client=api)
            got = panel(api, codes, N, day)
            acted = {c for c in codes if any(pd.Timestamp(days[i - 1]) < e.ex_date <= pd.Timestamp(day)
                                             for e in sim_market.events(c))}
            assert how(got)["carried"] == len(codes) - len(acted) and how(got)["built"], (day, how(got), acted)
            assert len(panel_dirs(root)) == 1 and _panel_shape(root) == shape, day  # same size, night after night
            assert_equals_get_ohlcv(api, got, codes, N, day)
            for c in codes[:3] + codes[-2:]:
                want = oracle.get_ohlcv(c, N, day)
                assert np.array_equal(got["close"][c].dropna().to_numpy(), want["close"].to_numpy()), (day, c)
        # Two sessions missed: the tails still hold both, so the panel is carried again.
        _set_clock(sim, monkeypatch, days[6])
        finder.cache.refresh(codes, progress=False, client=api)
        got = panel(api, codes, N, days[6])
        assert how(got)["carried"] >= len(codes) - 2, how(got)
        assert_equals_get_ohlcv(api, got, codes, N, days[6])
        # Longer than the tails reach (_index.TAIL sessions): every stock per stock, still right.
        _set_clock(sim, monkeypatch, days[13])
        finder.cache.refresh(codes, progress=False, client=api)
        got = panel(api, codes, N, days[13])
        assert how(got)["carried"] == 0 and how(got)["per_stock"] == len(codes), how(got)
        assert_equals_get_ohlcv(api, got, codes, N, days[13])
        # Deeper than the panel holds: read per stock (the carried depth would be short)
        _set_clock(sim, monkeypatch, days[14])
        finder.cache.refresh(codes, progress=False, client=api)
        deeper = panel(api, codes, N + 40, days[14])
        assert how(deeper)["carried"] <= 2 and how(deeper)["built"], how(deeper)  # only the young stocks qualify
        assert_equals_get_ohlcv(api, deeper, codes, N + 40, days[14])


def test_carrying_is_bounded_and_needs_the_same_cache_format(make_sim, sim_market, codes, tmp_path, monkeypatch):
    """After MAX_CARRIED carried sessions the panel is rebuilt from the histories; a panel of another cache
    format is never carried; an unreadable pointer makes its stock go per stock, with a warning."""
    import finder.cache
    from finder import calendar
    from finder.cache import _panel

    monkeypatch.setattr(_panel, "MAX_CARRIED", 1)
    days = [str(d.date()) for d in calendar.sessions_in_range("2025-11-03", "2025-11-14")]
    sim = make_sim(now=f"{days[0]}T20:30:00+09:00")
    root = tmp_path / "c"
    group = codes[:24]
    _set_clock(sim, monkeypatch, days[0])

    def night(api, day):
        _set_clock(sim, monkeypatch, day)
        finder.cache.refresh(group, progress=False, client=api)
        got = panel(api, group, N, day)
        assert_equals_get_ohlcv(api, got, group, N, day)
        return how(got)

    with client(sim, root) as api:
        panel(api, group, N, days[0])
        assert night(api, days[1])["carried"] >= 20
        assert night(api, days[2])["carried"] == 0   # carried once already: rebuilt from the histories
        assert night(api, days[3])["carried"] >= 20
        # a panel written from histories of another cache format is not carried
        (folder,) = panel_dirs(root)
        outer = json.loads((folder / "meta.json").read_text())
        meta = json.loads(outer["body"])
        meta["format"] = -1
        body = json.dumps(meta, sort_keys=True)
        import zlib

        (folder / "meta.json").write_text(json.dumps({"crc": zlib.crc32(body.encode()), "body": body}))
        _panel._meta_cache.clear()
        assert night(api, days[4])["carried"] == 0
        # an unreadable pointer (a directory where the file should be): that stock per stock, with a warning
        _set_clock(sim, monkeypatch, days[5])
        finder.cache.refresh(group, progress=False, client=api)
        ptr = root / "finder" / "index" / f"{group[3]}.json"
        ptr.unlink()
        ptr.mkdir()
        with pytest.warns(RuntimeWarning, match="unreadable cache index entry"):
            got = panel(api, group, N, days[5])
        assert how(got)["carried"] == len(group) - 1 - sum(
            any(pd.Timestamp(days[4]) < e.ex_date <= pd.Timestamp(days[5]) for e in sim_market.events(c))
            for c in group), how(got)
        assert group[3] not in got["close"].attrs["missing"]
        ptr.rmdir()
        assert_equals_get_ohlcv(api, got, group, N, days[5])


def test_a_changed_pointer_is_served_per_stock_and_rebuilt(sim, codes, tmp_path):
    root = tmp_path / "c"
    with client(sim, root) as api:
        ref = panel(api, codes, N, D)
        ptr = root / "finder" / "index" / f"{codes[5]}.json"
        tmp = ptr.with_suffix(".new")
        tmp.write_bytes(ptr.read_bytes())
        os.replace(tmp, ptr)  # the same history, a new pointer file: the column's key no longer matches
        got = panel(api, codes, N, D)
        assert how(got) == {"served": len(codes) - 1, "carried": 0, "per_stock": 1, "built": True}
        for f in FIELDS:
            pd.testing.assert_frame_equal(got[f], ref[f], check_freq=False)
        assert how(panel(api, codes, N, D))["served"] == len(codes)
        assert len(panel_dirs(root)) == 1


def test_panels_stay_bounded(sim, codes, tmp_path, monkeypatch):
    monkeypatch.setenv("FINDER_MAX_PANELS", "3")
    root = tmp_path / "c"
    with client(sim, root) as api:
        # Disjoint-ish code sets: none supersedes another, so only the cap bounds them.
        for k in range(6):
            panel(api, codes[k:k + 20], 30, D)
            assert len(panel_dirs(root)) <= 3


# -- damage --------------------------------------------------------------------------------------------------
def _damage(kind: str, folder: Path) -> None:
    data, meta = folder / "data.npy", folder / "meta.json"
    if kind == "truncated data":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif kind == "garbage in data":
        raw = bytearray(data.read_bytes())
        mid = len(raw) // 2
        raw[mid:mid + 4096] = os.urandom(4096)
        data.write_bytes(bytes(raw))
    elif kind == "no data":
        data.unlink()
    elif kind == "truncated meta":
        meta.write_bytes(meta.read_bytes()[:100])
    elif kind == "meta of another shape":  # valid JSON, consistent checksum: the shapes disagree
        outer = json.loads(meta.read_text())
        m = json.loads(outer["body"])
        m["codes"] = m["codes"][:-1]
        body = json.dumps(m, sort_keys=True)
        import zlib

        meta.write_text(json.dumps({"crc": zlib.crc32(body.encode()), "body": body}))
    elif kind == "meta still valid JSON":  # one digit of a stored row count changed
        outer = json.loads(meta.read_text())
        outer["body"] = outer["body"].replace('"rows": [1', '"rows": [2', 1)
        meta.write_text(json.dumps(outer))
    elif kind == "pickled data":
        # An object array: np.load would need pickle; the store refuses it before unpickling.
        marker = folder.parent.parent.parent / "PWNED"
        import pickle

        class Boom:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        with open(data, "wb") as fh:
            np.lib.format.write_array(fh, np.array([Boom()], dtype=object), allow_pickle=True)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated data", "garbage in data", "no data", "truncated meta",
                                  "meta of another shape", "meta still valid JSON", "pickled data"])
def test_damaged_panel_files_fall_back_and_are_rebuilt(kind, sim, codes, tmp_path):
    from finder.cache import _panel

    root = tmp_path / "c"
    with client(sim, root) as api:
        # A copy: a handed-out frame maps the file, and this test writes into the file in place,
        # which finder never does (see "Not guaranteed" in _panel's docstring).
        ref = {f: frame.copy(deep=True) for f, frame in panel(api, codes, N, D).items()}
        (folder,) = panel_dirs(root)
        _damage(kind, folder)
        _panel._verified.clear()   # what a fresh process sees: checksums not yet checked
        _panel._meta_cache.clear()
        if kind == "no data":  # what a removal by another process looks like: a plain miss
            got = panel(api, codes, N, D)
        else:
            with pytest.warns(RuntimeWarning, match="damaged panel"):
                got = panel(api, codes, N, D)
        assert how(got) == {"served": 0, "carried": 0, "per_stock": len(codes), "built": True}
        for f in FIELDS:
            pd.testing.assert_frame_equal(got[f], ref[f], check_freq=False)
        assert not folder.exists()  # the damaged panel is gone; a new one took its place
        assert len(panel_dirs(root)) == 1
        assert how(panel(api, codes, N, D))["served"] == len(codes)
        assert not (tmp_path / "PWNED").exists()


# -- concurrency ----------------------------------------------------------------------------------------------
READER = r"""
import json, sys, os
sys.path.insert(0, "tests")
from _support import digest
from finder import KiwoomAPI
from finder.cache._ohlcv import get_panel
spec = json.loads(sys.argv[1])
api = KiwoomAPI(spec["app"], spec["secret"], spec["url"], cache_dir=spec["cache"], rate=500.0)
out = []
for i in range(spec["rounds"]):
    p = get_panel(api, spec["codes"], spec["count"], spec["day"], field=spec["fields"], progress=False)
    out.append([digest([p[f] for f in spec["fields"]]), p["close"].attrs["panel"]])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_four_readers_while_panels_are_rebuilt(sim, codes, tmp_path):
    """4 processes load the panel in a loop while pointers move under them, forcing rebuilds and removals."""
    root = tmp_path / "c"
    with client(sim, root) as api:
        ref = panel(api, codes, N, D)
    want = digest([ref[f] for f in FIELDS])
    spec = {"app": APP_KEY, "secret": SECRET_KEY, "url": sim.url, "cache": str(root), "rounds": 12,
            "codes": codes, "count": N, "day": D, "fields": FIELDS}
    env = dict(os.environ)

    def move(k: int) -> None:
        for c in codes[k % len(codes)::7][:2]:  # same content, new pointer file: its panel column is stale
            ptr = root / "finder" / "index" / f"{c}.json"
            tmp = ptr.with_suffix(f".{os.getpid()}")
            tmp.write_bytes(ptr.read_bytes())
            os.replace(tmp, ptr)

    move(0)  # before any reader starts: every reader's first load finds stale columns and rebuilds
    procs = [subprocess.Popen([sys.executable, "-c", READER, json.dumps(spec)], cwd=str(REPO), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    moved = 1
    while any(p.poll() is None for p in procs):
        move(moved)
        moved += 1
        try:
            procs[0].wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    results = []
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err[-3000:]
        results += json.loads(out.strip().splitlines()[-1])
    assert len(results) == 48
    assert all(d == want for d, _ in results)
    assert any(h["built"] for _, h in results)
    assert len(panel_dirs(root)) <= 6
    with client(sim, root) as api:  # nothing moves any more: one rebuild at most, then served whole
        last = panel(api, codes, N, D)
        final = panel(api, codes, N, D)
    assert how(final) == {"served": len(codes), "carried": 0, "per_stock": 0, "built": False}
    for f in FIELDS:
        pd.testing.assert_frame_equal(last[f], ref[f], check_freq=False)
        pd.testing.assert_frame_equal(final[f], ref[f], check_freq=False)


def test_unadjusted_panels_are_kept_apart_and_equal_raw_bars(sim, sim_market, codes, tmp_path):
    from finder.cache._ohlcv import get_panel

    acting = [c for c in sim_market.codes
              if any(e.ex_date == pd.Timestamp("2025-10-31") for e in sim_market.events(c))][:2]
    group = codes + acting  # with an action inside the window, raw and adjusted bars differ
    with client(sim, tmp_path / "c") as api:
        adj = panel(api, group, N, D)
        raw1 = get_panel(api, group, N, D, field=FIELDS, adjusted=False, progress=False)
        assert how(raw1)["built"] and how(raw1)["served"] == 0  # an adjusted panel never serves raw bars
        raw2 = get_panel(api, group, N, D, field=FIELDS, adjusted=False, progress=False)
        assert how(raw2) == {"served": len(group), "carried": 0, "per_stock": 0, "built": False}
        assert how(panel(api, group, N, D))["served"] == len(group)  # both kept: neither supersedes the other
        for c in group:
            want = api.get_ohlcv(c, N, D, adjusted=False)
            got = raw2["close"][c].dropna()
            assert np.array_equal(got.to_numpy(), want["close"].to_numpy()), c
        c = acting[0]
        assert not np.array_equal(raw2["close"][c].dropna().to_numpy(), adj["close"][c].dropna().to_numpy())
