"""Bounded growth everywhere: info, clear and prune see the ready frames, panels, index bars and day snapshots.

Real parts: the real client over real HTTP against the simulator, the real
cache folder in a temporary directory.  Every count is checked against a
listing of the disk made here, independently of finder's own listing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from _support import client, full_history_codes

D = "2025-11-28"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FINDER_CACHE_DIR", str(tmp_path / "default"))
    monkeypatch.setenv("FINDER_NOW", f"{D}T20:30:00+09:00")
    for var in ("KIWOOM_APPKEY", "KIWOOM_SECRETKEY", "KIWOOM_BASE_URL", "FINDER_RATE", "FINDER_LIVE_TTL",
                "FINDER_MAX_PANELS"):
        monkeypatch.delenv(var, raising=False)


def _on_disk(root: Path) -> dict[str, list[str]]:
    """What the four side stores hold, listed straight from the disk."""
    state = root / "finder"
    frames = state / "frames"
    panels = state / "panels"
    bars = state / "index_bars"
    snaps = state / "snapshots"
    return {
        "frames": sorted(p.name for p in frames.iterdir() if p.suffix == ".pkl") if frames.is_dir() else [],
        "panels": sorted(p.name for p in panels.iterdir() if p.is_dir() and (p / "meta.json").is_file())
        if panels.is_dir() else [],
        "index_bars": sorted(p.name for p in bars.iterdir() if p.suffix in (".npz", ".json")) if bars.is_dir() else [],
        "snapshots": sorted(p.name for p in snaps.iterdir() if p.suffix == ".json") if snaps.is_dir() else [],
    }


def _bytes(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(path) for f in fs) if path.is_dir() else 0


def _quote(api, code: str) -> dict:
    from finder.cache import _snapshots

    def fetch() -> dict:
        q = api.get_quotes([code])
        return {"close": float(q.loc[code, "close"])} if code in q.index else {}

    return _snapshots.cached(api.cache_root, "ka10095", code, fetch)


def _fill(api, codes: list[str]) -> None:
    from finder.cache._index_bars import cached_index
    from finder.cache._ohlcv import get_panel

    get_panel(api, codes, 60, D, field=["close"], progress=False)
    cached_index(api, "KOSPI", 30, D)
    for c in codes[:3]:
        _quote(api, c)


def test_info_counts_and_clear_code_see_panels_index_bars_and_snapshots(sim, sim_market, tmp_path):
    from finder import cache

    root = tmp_path / "cache"
    codes = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 24)
    with client(sim, root) as api:
        _fill(api, codes)
        disk = _on_disk(root)
        assert len(disk["panels"]) == 1 and disk["index_bars"] and len(disk["snapshots"]) == 3, disk
        assert disk["frames"] == sorted(f"{c}.pkl" for c in codes), disk  # one ready frame per stock
        got = cache.info(root)
        for kind, names in disk.items():
            assert got[kind] == len(names), (kind, got, disk)
        side = sum(_bytes(root / "finder" / k) for k in ("frames", "panels", "index_bars", "snapshots"))
        joblib_and_index = _bytes(root / "joblib") + _bytes(root / "finder" / "index")
        assert got["bytes"] == joblib_and_index + side

        # clear(code): the stock's entries, its ready frame, the panel holding its column, its quote
        entries_before = got["entries"]
        n = cache.clear(codes[0], root=root)
        after = _on_disk(root)
        assert after["panels"] == [] and len(after["snapshots"]) == 2
        assert after["frames"] == [f for f in disk["frames"] if f != f"{codes[0]}.pkl"]
        assert after["index_bars"] == disk["index_bars"]
        assert n == (entries_before - cache.info(root)["entries"]) + 1 + 1 + 1

        # clear(): every item of every store, and the count says so
        _fill(api, codes)
        now = _on_disk(root)
        total = cache.info(root)["entries"] + sum(len(v) for v in now.values())
        assert cache.clear(root=root) == total
        assert _on_disk(root) == {"frames": [], "panels": [], "index_bars": [], "snapshots": []}
        got = cache.info(root)
        assert (got["entries"], got["frames"], got["panels"], got["index_bars"], got["snapshots"],
                got["bytes"]) == (0, 0, 0, 0, 0, 0)


def test_prune_by_size_trims_the_side_stores_too(sim, sim_market, tmp_path):
    from finder import cache

    root = tmp_path / "cache"
    codes = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 24)
    with client(sim, root) as api:
        _fill(api, codes)
    items = cache.info(root)
    n_items = items["entries"] + items["frames"] + items["panels"] + items["index_bars"] + items["snapshots"]
    out = cache.prune(max_bytes=0, root=root)
    assert out["removed"] == n_items and out["kept"] == 0, (out, items)
    assert _on_disk(root) == {"frames": [], "panels": [], "index_bars": [], "snapshots": []}
    got = cache.info(root)
    assert (got["entries"], got["stocks"], got["frames"], got["panels"], got["index_bars"],
            got["snapshots"]) == (0, 0, 0, 0, 0, 0)


def test_snapshots_of_past_sessions_do_not_accumulate(make_sim, sim_market, tmp_path, monkeypatch):
    """Nightly use writes quotes for different stocks each day; earlier days' files go without a prune."""
    root = tmp_path / "cache"
    codes = full_history_codes(sim_market, "2024-01-01", "2025-12-31", 12)
    days = ["2025-11-24", "2025-11-25", "2025-11-26", "2025-11-27"]
    sim = make_sim(now=f"{days[0]}T20:30:00+09:00")
    for i, day in enumerate(days):
        now = f"{day}T20:30:00+09:00"
        sim.set_now(now)
        monkeypatch.setenv("FINDER_NOW", now)
        with client(sim, root) as api:
            for c in codes[3 * i: 3 * i + 3]:
                assert _quote(api, c)
        names = _on_disk(root)["snapshots"]
        assert names == sorted(f"ka10095-{c}.json" for c in codes[3 * i: 3 * i + 3]), (day, names)
        locks = [p.name for p in (root / "finder" / "snapshots").glob("*.lock")]
        assert len(locks) <= 3, locks
