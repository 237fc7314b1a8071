"""finder's disk cache of daily bars: look at it, warm it, trim it.

Bars fetched once are kept on disk with ``joblib.Memory`` and reused across
kernel restarts, notebooks, papermill runs and worker processes.  How entries
are keyed and kept correct is explained in ``_store`` and ``_history``; this
module is the user-facing surface.

Example::

    >>> import finder
    >>> finder.cache.info()["location"]              # doctest: +SKIP
    >>> finder.cache.warm("KOSPI", count=600)        # doctest: +SKIP
    >>> finder.cache.prune(max_bytes="2GB", older_than="30d")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from .. import _validate, calendar
from .._exceptions import InvalidInputError, KiwoomError
from .._paths import cache_dir
from ..client import _stats
from . import _disk
from ._store import Store

__all__ = ["info", "clear", "prune", "warm", "refresh", "location", "parse_size", "parse_age"]

log = logging.getLogger("finder.cache")


def location() -> Path:
    """The cache folder in use (``FINDER_CACHE_DIR``, the checkout's ``cache_dir/``, or a per-user folder)."""
    return cache_dir()


def _root(root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser().resolve() if root else cache_dir()


def _entries(root: Path):
    base = root / "joblib"
    if not base.is_dir():
        return
    for meta_dir, _dirs, files in os.walk(base):
        if "output.pkl" in files:
            yield Path(meta_dir)


_dir_bytes = _disk.tree_bytes


def _stocks_on_disk(store: Store) -> list[str]:
    """Codes whose pointer names a history entry that is on disk (what ``info`` counts as stocks)."""
    return _stocks_on_disk_of(store, store.index.codes())


def _drop_dangling_pointers(store: Store) -> int:
    """Remove pointers whose history entry is gone (after a prune), so counts agree with the disk.

    Each is removed under its stock's lock, skipped when another process holds it (it is
    writing a new pointer right now).
    """
    from filelock import Timeout

    on_disk = set(_stocks_on_disk(store))
    n = 0
    for code in store.index.codes():
        if code in on_disk:
            continue
        try:
            with store.lock(code).acquire(timeout=0):
                ptr = store.read_pointer(code)
                if ptr is None or code not in _stocks_on_disk_of(store, [code]):
                    n += store.index.remove(code)
        except (Timeout, OSError):
            continue
    return n


def _stocks_on_disk_of(store: Store, codes: list[str]) -> list[str]:
    from . import _backend  # the one module that knows where joblib keeps an entry

    out = []
    for code in codes:
        ptr = store.read_pointer(code)
        entry = ptr.get("entry") if ptr else None
        if entry and os.path.isfile(os.path.join(_backend.entry_path(store.memory, (store._history.func_id, entry)),
                                                 "output.pkl")):
            out.append(code)
    return out


def info(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Where the cache is and what it holds, plus this process's hits, misses and upstream requests.

    Keys: ``location``, ``entries`` (joblib entries), ``stocks`` (stocks whose history entry is on
    disk), ``frames``, ``panels``, ``index_bars``, ``snapshots`` (files of those stores, see ``_disk``),
    ``bytes`` (all of them, with the pointer index), ``hits``, ``misses``, ``requests`` (per
    api-id, this process), ``retries``, ``rate_limited``, ``writable``, ``unsafe``.
    """
    path = _root(root)
    store = Store.for_root(path) if path.exists() else None
    index = path / "finder" / "index"
    return {
        "location": str(path),
        "entries": sum(1 for _ in _entries(path)),
        "stocks": len(_stocks_on_disk(store)) if store else 0,
        **_disk.counts(path),
        "bytes": (_dir_bytes(path / "joblib") + (_dir_bytes(index) if index.is_dir() else 0)
                  + _disk.bytes_on_disk(path)),
        "hits": store.stats.hits if store else 0,
        "misses": store.stats.misses if store else 0,
        **{k: v for k, v in _stats.snapshot().items()},
        "writable": bool(store.writable) if store else False,
        "unsafe": store.unsafe if store else None,
    }


def clear(code: str | None = None, root: str | os.PathLike | None = None) -> int:
    """Remove every cached bar, or only one stock's (``code``); returns how many items went.

    Items: joblib entries, ready frames, stored panels, index-bar files and day snapshots
    (``clear()`` removes them all; ``clear(code)`` the stock's entries, its ready frame, the
    panels holding its column and its quote snapshot).  Tokens and pacing
    state are kept: they are not data.
    """
    path = _root(root)
    if code is not None:
        code = _validate.code(code)  # before the Store, which creates the cache folder
    store = Store.for_root(path)
    if code is None:
        n = sum(1 for _ in _entries(path))
        shutil.rmtree(path / "joblib", ignore_errors=True)
        shutil.rmtree(path / "finder" / "index", ignore_errors=True)
        n += _disk.clear_all(path)
        store.forget()
        return n
    code = _validate.code(code)
    n = 0
    with store.lock(code):
        store.index.remove(code)
        store.index.forget_unknown(code)
        needle = repr(code)
        unknown = 0
        for entry in list(_entries(path)):
            try:
                meta = json.loads((entry / "metadata.json").read_text())
            except (OSError, ValueError):
                # A missing or half-written metadata.json hides which stock the entry holds.
                # Dropping an entry is always safe (it is fetched again when asked for), so
                # remove it too rather than leave this stock's data behind.
                shutil.rmtree(entry, ignore_errors=True)
                unknown += 1
                n += 1
                continue
            if meta.get("input_args", {}).get("code") == needle:
                shutil.rmtree(entry, ignore_errors=True)
                n += 1
        if unknown:
            log.warning("finder: %d cache entries had no readable metadata.json, so their stock was unknown; "
                        "removed them too (they are fetched again when needed)", unknown)
            import warnings

            warnings.warn(f"clear({code!r}) also removed {unknown} cache entries whose metadata.json was missing "
                          "or damaged", RuntimeWarning, stacklevel=2)
        n += _disk.clear_code(path, code)
        store.forget(code)
    return n


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.I)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)


def parse_size(value: Any) -> int:
    """``'2GB'``, ``'500M'``, ``1048576`` → bytes."""
    if isinstance(value, bool):
        raise InvalidInputError(f"max size {value!r} is not a size")
    if isinstance(value, (int, float)) and value >= 0:
        return int(value)
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise InvalidInputError(f"max size {value!r} is not a size such as '2GB' or '500MB'")
    mult = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[m.group(2).upper()]
    return int(float(m.group(1)) * mult)


def parse_age(value: Any) -> float:
    """``'30d'``, ``'12h'``, ``'2w'`` or seconds → seconds."""
    if isinstance(value, bool):
        raise InvalidInputError(f"age {value!r} is not a duration")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    m = _AGE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise InvalidInputError(f"age {value!r} is not a duration such as '30d' or '12h'")
    mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2).lower()]
    return float(m.group(1)) * mult


# Temporaries of atomic writes: joblib's "output.pkl.<uuid>-<pid>-<thread>", finder's ".tmp-*"
# (pointers, token) and "*.tmp<pid>" (pacing slots).  Nothing ever reads them.
_TEMP = re.compile(r"^\.tmp-|\.(pkl|json|py)\.[0-9a-f]{32}-\d+-\d+$|\.tmp\d+$")
STALE_TEMP_AGE = 3600.0  # no write takes an hour: an older temporary was left by a killed process


def _drop_stale_temporaries(path: Path, now: float) -> int:
    """Remove temporaries that writers killed mid-write left behind (and the entry folders they leave empty)."""
    n = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            if not _TEMP.search(f):
                continue
            p = Path(dirpath) / f
            try:
                if now - os.lstat(p).st_mtime > STALE_TEMP_AGE:
                    p.unlink()
                    n += 1
            except OSError:
                continue
            parent = p.parent
            if re.fullmatch(r"[0-9a-f]{32}", parent.name):
                try:
                    parent.rmdir()  # only if empty: an entry that never got its output.pkl
                except OSError:
                    pass
    if n:
        import warnings

        msg = f"removed {n} temporary files left in {path} by interrupted writes (a process killed while writing)"
        log.warning("finder: %s", msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return n


def prune(max_bytes: Any = None, older_than: Any = None, root: str | os.PathLike | None = None) -> dict[str, int]:
    """Trim the cache: drop items unused for ``older_than``, then the least recently used until under ``max_bytes``.

    Items are joblib entries and the stores beside them (ready frames, panels, index bars,
    day snapshots; see ``_disk``).  Expired live bars and snapshots of past
    sessions are always dropped, and so are temporary files that a process
    killed mid-write left behind (older than an hour).  A pruned stock is
    simply fetched again when next asked for; nothing wrong is ever served.
    Returns counts.
    """
    limit = parse_size(max_bytes) if max_bytes is not None else None
    age = parse_age(older_than) if older_than is not None else None
    path = _root(root)
    from . import _snapshots
    from ._store import live_ttl

    now = time.time()
    past_snapshots = _snapshots.remove_past(path)  # never served again: not subject to the limits
    items = []  # (used, size, remove, is_live, mtime, is_entry)
    for entry in _entries(path):
        try:
            st = os.stat(entry / "output.pkl")
        except OSError:
            continue
        used = max(st.st_atime, st.st_mtime)
        size = _dir_bytes(entry)
        is_live = entry.parent.name == "live"
        items.append((used, size, entry, is_live, st.st_mtime, True))
    for kind in _disk.KINDS:
        for item in _disk.items(path, kind):
            items.append((item.used, item.size, item, False, item.used, False))
    removed = freed = 0
    entries_removed = 0

    def drop(target, size: int, is_entry: bool) -> None:
        nonlocal removed, freed, entries_removed
        if is_entry:
            shutil.rmtree(target, ignore_errors=True)
            entries_removed += 1
        elif not _disk.remove(target):
            return
        removed += 1
        freed += size

    keep = []
    for used, size, target, is_live, mtime, is_entry in items:
        if is_live and now - mtime > live_ttl():
            drop(target, size, is_entry)
        elif age is not None and now - used > age:
            drop(target, size, is_entry)
        else:
            keep.append((used, size, target, is_entry))
    if limit is not None:
        total = sum(k[1] for k in keep)
        for used, size, target, is_entry in sorted(keep, key=lambda k: k[0]):
            if total <= limit:
                break
            drop(target, size, is_entry)
            total -= size
    temporaries = _drop_stale_temporaries(path, now)
    store = Store.for_root(path)
    pointers = _drop_dangling_pointers(store) if entries_removed else 0
    store.forget()
    return {"removed": removed + past_snapshots, "freed_bytes": freed, "kept": len(items) - removed,
            "temporaries": temporaries, "pointers": pointers, "snapshots": past_snapshots}


def warm(universe: Any = "KOSPI", count: int = 600, base_dt: Any = None, progress: bool = True,
         client=None) -> dict[str, Any]:
    """Fetch ``count`` bars for every stock of ``universe`` into the cache, with a progress bar.

    Stocks already cached are skipped, so an interrupted warm-up resumes where
    it stopped.  ``universe`` is a market name (``'KOSPI'``, ``'KOSPI+KOSDAQ'``)
    or a list of codes.  Returns counts of done, skipped and failed stocks.
    """
    from .. import data
    from ._ohlcv import _covered, _Pointers, resolve

    count = _validate.count(count)
    when = _validate.base_dt(base_dt)
    api = client or data.default_client()
    if isinstance(universe, str) and not re.match(r"^[0-9][0-9A-Z]{5}", universe):
        codes = list(data.get_stock_list(universe, client=api)["code"])
    elif isinstance(universe, (list, tuple)):
        codes = [_validate.code(c) for c in universe]
    else:
        raise InvalidInputError(f"universe={universe!r} is not a market name or a list of codes")
    store = Store.for_client(api)
    session, live = resolve(when)
    end = calendar.previous_session(session) if live else session
    import numpy as np

    # Stocks already cached but a session behind: one ka10095 request per 100 of them.
    from ._refresh import refresh_if_behind

    refresh_if_behind(api, codes, end)

    end64 = np.datetime64(end.date(), "D")
    from .._progress import progress as tqdm  # widget, terminal or a one-line log (finder._progress)

    done = skipped = 0
    failed: dict[str, str] = {}
    for code in tqdm(codes, desc="warming cache", unit="stock", disable=not progress):
        ptr_ok = _covered(store, code, end64, count, _Pointers(store))
        try:
            store.ensure(api, code, end64, count)
        except KiwoomError as exc:
            failed[code] = f"{type(exc).__name__}: {exc}"
            continue
        if ptr_ok:
            skipped += 1
        else:
            done += 1
    return {"stocks": len(codes), "fetched": done, "skipped": skipped, "failed": failed}


def refresh(universe: Any = None, progress: bool = True, client=None) -> dict[str, Any]:
    """Bring cached stocks up to the newest final session, 100 stocks per request (ka10095).

    ``universe``: None (every cached stock), a market name or a list of codes;
    only stocks already in the cache are refreshed.  A stock with a corporate
    action today gets its adjusted history fetched again; a stock more than one
    session behind is walked with ka10081.  Returns counts (see
    ``finder.cache._refresh.refresh_histories``).

    Example::

        >>> finder.cache.refresh()        # after 20:00 KST, once a day  # doctest: +SKIP
    """
    from .. import data
    from ._refresh import refresh_histories

    api = client or data.default_client()
    if universe is None:
        codes = None
    elif isinstance(universe, str) and not re.match(r"^[0-9][0-9A-Z]{5}", universe):
        codes = list(data.get_stock_list(universe, client=api)["code"])
    elif isinstance(universe, (list, tuple)):
        codes = [_validate.code(c) for c in universe]
    else:
        raise InvalidInputError(f"universe={universe!r} is not a market name or a list of codes")
    return refresh_histories(api, codes, progress=progress)
