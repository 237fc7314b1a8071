"""Day snapshots on disk: answers that describe "today" (the ka10032 ranking, ka10095 quotes).

Such an answer belongs to one session.  While that session's bar is live
(09:00 to the cut-off, KST) a stored answer is reused for ``FINDER_LIVE_TTL``
seconds; once the session is final (after the cut-off, or before the next
open) it is kept and reused as is.  Every process shares the files, and a
miss is single-flight across processes (a file lock per key), so four
workers asking at once cost one request.

Guarantees: an error or an empty answer is never stored; files are JSON,
written atomically and owner-only (nothing here unpickles).  Bounded: a
snapshot of a past session is never served again (Kiwoom only answers these
operations for today), so the first write of a session in a process removes
every snapshot (and its lock file) of an earlier session, and ``prune``
does too; months of nightly use keep at most one file per key of the
current session.  Not guaranteed: a lock file removed while another process
waits on it may let two processes fetch the same key once (both write the
same answer atomically).

Layout: ``<cache>/finder/snapshots/<kind>-<key>.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from .. import calendar
from .._paths import state_dir, write_private_file

_SAFE = re.compile(r"[^0-9A-Za-z_.-]")


def _dir(root: Path) -> Path:
    return state_dir(Path(root)) / "snapshots"


def current_session() -> tuple[str, bool]:
    """(the session a "today" answer belongs to, whether it is final)."""
    _today, live, final = calendar.state()
    if live is not None:
        return live.strftime("%Y-%m-%d"), False
    return final.strftime("%Y-%m-%d"), True


def _fresh(entry: dict, session: str, ttl: float) -> bool:
    if entry.get("session") != session:
        return False
    return bool(entry.get("final")) or time.time() - float(entry.get("time", 0)) < ttl


def cached(root: Path, kind: str, key: str, fetch: Callable[[], Any]) -> Any:
    """``fetch()``'s JSON-able answer for the current session, from disk when fresh (see module doc)."""
    from ._store import live_ttl

    folder = _dir(root)
    path = folder / _SAFE.sub("_", f"{kind}-{key}.json")
    session, final = current_session()
    ttl = live_ttl()
    entry = _read(path)
    if entry is not None and _fresh(entry, session, ttl):
        return entry["data"]
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        entry = _read(path)
        if entry is not None and _fresh(entry, session, ttl):
            return entry["data"]
        data = fetch()
        if data:  # never store an empty answer
            write_private_file(path, json.dumps({"session": session, "final": final, "time": time.time(),
                                                 "data": data}, ensure_ascii=False).encode())
    if data:
        _sweep_once(Path(root), session)
    return data


_swept: set[tuple[str, str]] = set()  # (cache root, session) this process already swept


def _sweep_once(root: Path, session: str) -> None:
    key = (str(root), session)
    if key not in _swept:
        _swept.add(key)
        remove_past(root, session)


def remove_past(root: Path, session: str | None = None) -> int:
    """Remove snapshots of sessions before ``session`` (default: the current one); returns how many."""
    session = session or current_session()[0]
    folder = _dir(Path(root))
    n = 0
    try:
        names = [e.name for e in os.scandir(folder) if e.name.endswith(".json")]
    except OSError:
        return 0
    for name in names:
        path = folder / name
        entry = _read(path)
        # An unreadable file is never served either (a miss), so it goes too.
        if entry is not None and str(entry.get("session", "")) >= session:
            continue
        try:
            path.unlink()
            n += 1
        except OSError:
            continue
        try:
            os.unlink(str(path) + ".lock")
        except OSError:
            pass
    return n


def remove_key(root: Path, kind: str, key: str) -> int:
    """Remove one snapshot (e.g. a stock's quote); returns 1 when it was there."""
    path = _dir(Path(root)) / _SAFE.sub("_", f"{kind}-{key}.json")
    try:
        path.unlink()
    except OSError:
        return 0
    try:
        os.unlink(str(path) + ".lock")
    except OSError:
        pass
    return 1


def _read(path: Path) -> dict | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        return entry if isinstance(entry, dict) and "data" in entry else None
    except (OSError, ValueError):
        return None


def top_traded(client, market: str = "ALL", exchange: str = "KRX") -> "pd.DataFrame":
    """Today's traded-value ranking (ka10032, every page) for ``market``, through the day snapshot.

    Same frame as ``KiwoomClient.get_top_traded``; reused for the live TTL
    while the market is open, kept after the cut-off.

    Example::

        >>> top_traded(finder.data.default_client(), "KOSPI").code.head(20).tolist()  # doctest: +SKIP
    """
    import pandas as pd

    from ..client._rank import RANK_COLUMNS, rank_body

    body = rank_body(market, exchange, False)  # validates before anything is read or sent
    rows = cached(client.cache_root, "ka10032", f"{body['mrkt_tp']}-{body['stex_tp']}-0",
                  lambda: client.get_top_traded(market, exchange=exchange).to_dict("records"))
    return pd.DataFrame(rows, columns=RANK_COLUMNS)


def clear(root: Path) -> None:
    shutil.rmtree(_dir(Path(root)), ignore_errors=True)
