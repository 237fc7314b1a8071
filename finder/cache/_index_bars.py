"""Index bars (ka20006) on disk: one growing history per index, shared by every process.

An index has no corporate actions, so, unlike a stock, its bars never change
with ``base_dt``: one history per index, ending at a final session, serves
every ``(count, base_dt)``.

Guarantees:

* Final bars are fetched once: a history is extended forward with a walk that
  stops at the stored end (one request a session), and backward only when a
  request needs older bars than are stored.  Every merge checks that the
  overlapping session agrees; if it does not, the new walk replaces the old
  history rather than being spliced onto it.
* Today's bar is live until the cut-off: it is kept apart, for
  ``FINDER_LIVE_TTL`` seconds, and never written into the final history.
* Misses are single-flight across processes (a file lock per index); files are
  written atomically and owner-only, as ``.npz`` arrays and JSON (no pickle,
  so loading them cannot run code).
* Errors and empty answers are never stored.

Not guaranteed: ``finder cache clear`` / ``prune`` know nothing of these
files (``clear(root)`` here removes them; the compat class calls it).

Layout: ``<cache>/finder/index_bars/<inds_cd>.npz`` (+ ``.live.json``, ``.lock``).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from .. import _validate, calendar
from .._exceptions import KiwoomError, StockNotFoundError
from .._models import DAILY_PAGE_SIZE
from .._paths import state_dir, write_private_file
from ..client._index import index_code, index_name, index_walk
from ..client._parse import BAR_COLUMNS

log = logging.getLogger("finder.cache")

FORMAT = 1


def _dir(root: Path) -> Path:
    return state_dir(Path(root)) / "index_bars"


def _live_ttl() -> float:
    from ._store import live_ttl

    return live_ttl()


@dataclass
class Stored:
    """One index's final history: bars ascending, ``reached_start`` when nothing older exists."""

    bars: pd.DataFrame
    reached_start: bool

    @property
    def end(self) -> pd.Timestamp:
        return self.bars.index[-1]


# -- the plan (pure) ----------------------------------------------------------------------------
def plan(stored: Stored | None, final: pd.Timestamp, end: pd.Timestamp, count: int) -> tuple[str, Any]:
    """What to fetch so that ``count`` final bars ending at ``end`` (<= ``final``) are stored.

    ``('hit', None)``: nothing; ``('extend', stored_end)``: walk back from
    ``final`` to the stored end; ``('deepen', rows)``: walk back from before
    the stored start for ``rows`` more bars; ``('fetch', rows)``: no history
    yet, walk back from ``final`` for ``rows`` bars.
    """
    if stored is None:
        need = count + max(calendar.sessions_between_count(end, final) - 1, 0)
        return "fetch", -(-need // DAILY_PAGE_SIZE) * DAILY_PAGE_SIZE
    if stored.end < end:
        return "extend", stored.end
    have = int((stored.bars.index <= end).sum())
    if have >= count or stored.reached_start:
        return "hit", None
    return "deepen", -(-(count - have) // DAILY_PAGE_SIZE) * DAILY_PAGE_SIZE


def merge(old: Stored, new: pd.DataFrame, new_reached_start: bool, code: str) -> Stored:
    """``new`` (newer bars) onto ``old``; ``new`` alone when they do not overlap or disagree."""
    if new.empty:
        return old
    overlap = old.bars.index.intersection(new.index)
    if not len(overlap):
        log.warning("index %s: the new walk does not reach the stored bars; keeping the new walk only", code)
        return Stored(new, new_reached_start)
    a = old.bars.loc[overlap, ["open", "high", "low", "close"]].to_numpy()
    b = new.loc[overlap, ["open", "high", "low", "close"]].to_numpy()
    if not np.allclose(a, b, rtol=0, atol=0.011):  # levels come in hundredths
        log.warning("index %s: stored and new bars disagree on %s; keeping the new walk only", code,
                    overlap[0].date())
        return Stored(new, new_reached_start)
    bars = pd.concat([old.bars[old.bars.index < new.index[0]], new])
    return Stored(bars, old.reached_start or new_reached_start)


# -- files ------------------------------------------------------------------------------------
def _load(path: Path) -> Stored | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != FORMAT:
                return None
            index = pd.DatetimeIndex(z["dates"].astype("datetime64[ns]"), name="date")
            bars = pd.DataFrame({c: z[c] for c in BAR_COLUMNS}, index=index)
            return Stored(bars, bool(z["reached_start"]))
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged file is dropped and fetched again, never trusted
        log.warning("index bars %s unreadable (%s); fetching again", path.name, exc)
        return None


def _save(path: Path, stored: Stored) -> None:
    buf = io.BytesIO()
    b = stored.bars
    np.savez(buf, format=np.int64(FORMAT), reached_start=np.bool_(stored.reached_start),
             dates=b.index.values.astype("datetime64[D]"), **{c: b[c].to_numpy() for c in BAR_COLUMNS})
    write_private_file(path, buf.getvalue())


# -- the cached call ------------------------------------------------------------------------------
def get_index(name: str, count: int = 220, base_dt: Any = None, client=None) -> pd.DataFrame:
    """``count`` daily bars of index ``name`` (``KOSPI``, ``KOSDAQ``, ``KOSPI200``) ending at the last
    session on or before ``base_dt``, from the disk cache (ka20006 on a miss).

    Same frame as ``get_ohlcv``: ``DatetimeIndex`` named ``date``, float
    ``open, high, low, close`` in index points (2521.27), int ``volume`` and
    ``value`` (KRW).  ``base_dt=None``: latest, today's live bar included
    while the market is open.  ``client``: default, the process's default client.

    Example::

        >>> finder.get_index("KOSPI", 60, "2025-10-01").close.iloc[-1]  # doctest: +SKIP
    """
    if client is None:
        from ..data import default_client

        client = default_client()
    return cached_index(client, name, count, base_dt)


def cached_index(client, name: str, count: int = 220, base_dt: Any = None) -> pd.DataFrame:
    """``get_index`` for an explicit client."""
    name = index_name(name)
    code = index_code(name)
    count = _validate.count(count)
    when = _validate.base_dt(base_dt)
    today, live, final = calendar.state()
    target = when if when is not None else today
    live_wanted = live is not None and target >= live
    end = final if live_wanted else min(calendar.session_on_or_before(target), final)
    need = count - 1 if live_wanted else count
    parts = []
    if need > 0:
        parts.append(_final_bars(client, name, code, end, final, need))
    if live_wanted:
        parts.append(_live_bar(client, name, code, live))
    frame = pd.concat(parts) if len(parts) > 1 else parts[0]
    return frame.iloc[-count:]


def _final_bars(client, name: str, code: str, end: pd.Timestamp, final: pd.Timestamp, count: int) -> pd.DataFrame:
    folder = _dir(client.cache_root)
    path = folder / f"{code}.npz"
    stored = _load(path)
    if plan(stored, final, end, count)[0] != "hit":
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f"{code}.lock")):
            stored = _load(path)  # another process may have fetched it meanwhile
            for _ in range(4):  # extend, then deepen: at most a few steps
                action, arg = plan(stored, final, end, count)
                if action == "hit":
                    break
                stored = _step(client, name, code, stored, final, action, arg)
                _save(path, stored)
    bars = stored.bars[stored.bars.index <= end]
    return bars.iloc[-count:].copy()


def _step(client, name: str, code: str, stored: Stored | None, final: pd.Timestamp, action: str, arg) -> Stored:
    if action == "fetch":
        bars, start = index_walk(client, name, final, arg)
        bars = bars[bars.index <= final]
        return Stored(bars, start)
    if action == "extend":
        gap = calendar.sessions_between_count(arg, final)
        bars, start = index_walk(client, name, final, gap + 1, stop_after=arg)
        return merge(stored, bars[bars.index <= final], start, code)
    # deepen: walk from the session before the stored start
    before = calendar.previous_session(stored.bars.index[0])
    try:
        bars, start = index_walk(client, name, before, arg)
    except StockNotFoundError:  # nothing older at all: the stored history is the whole history
        return Stored(stored.bars, True)
    joined = pd.concat([bars[bars.index < stored.bars.index[0]], stored.bars])
    return Stored(joined, start)


def _live_bar(client, name: str, code: str, session: pd.Timestamp) -> pd.DataFrame:
    folder = _dir(client.cache_root)
    path = folder / f"{code}.live.json"
    day = session.strftime("%Y-%m-%d")
    try:
        hit = json.loads(path.read_text())
        if hit.get("session") == day and time.time() - float(hit["time"]) < _live_ttl():
            return _bar_frame(hit["bar"], session)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    bars, _ = index_walk(client, name, session, 1)
    if bars.empty or bars.index[-1] != session:
        return bars.iloc[:0]  # no bar today yet: nothing to add, nothing stored
    bar = {c: float(bars[c].iloc[-1]) for c in BAR_COLUMNS}
    write_private_file(path, json.dumps({"session": day, "time": time.time(), "bar": bar}).encode())
    return _bar_frame(bar, session)


def _bar_frame(bar: dict, session: pd.Timestamp) -> pd.DataFrame:
    frame = pd.DataFrame({c: [bar[c]] for c in BAR_COLUMNS}, index=pd.DatetimeIndex([session], name="date"))
    for c in ("volume", "value"):
        frame[c] = frame[c].round().astype("int64")
    return frame


def refresh(client) -> dict[str, int]:
    """Extend every stored index to the newest final session (one request each when behind).

    Returns ``{"indices": refreshed, "indices_failed": failed}``; called by
    ``finder.cache.refresh`` (``_refresh.refresh``).
    """
    folder = _dir(client.cache_root)
    final = calendar.latest_final_session()
    done = failed = 0
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        code = path.stem
        names = [n for n, c in _codes().items() if c == code]
        if not names:
            continue
        try:
            _final_bars(client, names[0], code, final, final, 1)
            done += 1
        except KiwoomError as exc:
            log.warning("index %s: refresh failed (%s)", names[0], exc)
            failed += 1
    return {"indices": done, "indices_failed": failed}


def _codes() -> dict[str, str]:
    from .._models import INDEX_CODES

    return INDEX_CODES


def clear(root: Path) -> None:
    """Remove every stored index bar under the cache folder ``root``."""
    shutil.rmtree(_dir(Path(root)), ignore_errors=True)
