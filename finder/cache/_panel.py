"""The panel store: whole dates × codes panels on disk, memory-mapped on warm loads.

A full-market ``get_panel`` from per-stock entries pays 2,500 file opens,
unpicklings and frame builds.  This module keeps the assembled panel of a
request as one ``.npy`` file (all six fields) plus a JSON description, and a
warm load maps that file copy-on-write (``np.memmap(mode="c")``): it costs
page-cache reads, not a 72 MB copy.

Layout, inside finder's state folder of the cache (``<cache>/finder/panels``)::

    <id>/meta.json   codes, dates, per-stock identity, rows, actions, checksums
    <id>/data.npy    float64 array (6 fields, codes, dates); NaN where a stock did not trade
    .lock            held while a panel is published or removed

Guarantees:

* **Identity by construction.**  Each stock's column is keyed by the identity
  of its pointer file (inode, mtime, ctime, size).  Pointers are replaced
  atomically whenever a history changes (a refresh, a corporate action, a
  deeper walk), so a column whose pointer moved is never served: that stock
  takes the per-stock path, or is carried forward (next point), and the panel
  is rebuilt.
* **Carried forward only where nothing changed.**  After a refresh a new
  panel is the old one plus each pointer's newest bars (:func:`extend`) for
  the stocks whose actions up to the old end are the ones the panel knows,
  with none after it, from a panel of the same cache format; the new column
  is keyed by the pointer those bars were read from.  A panel is carried at
  most ``MAX_CARRIED`` sessions in a row, then rebuilt from the histories.
* **Values equal to get_ohlcv.**  A panel is built from the same histories at
  ``end`` = the oldest anchor among them, adjusted as of that ``end``.  A
  request for an earlier ``base_dt`` is a slice only for stocks without a
  corporate action in ``(base_dt, end]``; the others take the per-stock path,
  which applies the as-of factor.  A shorter ``count`` or a subset of codes
  is a slice (the last ``count`` bars of each stock, NaN elsewhere).
* **Never an error or wrong data from a panel file.**  Only ``.npy`` arrays
  (read without pickle) and JSON are loaded, so a planted file cannot run
  code.  Every load checks the data file's size and header against
  meta.json, and its stat stamp (inode, size, mtime, ctime) and boot against
  those taken when it was written: a file written to since (garbage, truncation,
  a copy) or written before the last reboot (a power cut may have lost pages
  finder never fsynced) has its per-field CRC-32s read in full first (once
  per process).
  A missing, truncated or damaged file is a miss: the request falls back to
  the per-stock path, the damaged panel is removed and a new one is written.
  Not detected: media bit rot that changes bytes without a write (the
  per-stock pickles do not detect it either).
* **Never aliasing.**  Each load maps the file privately: writes into a
  handed-out frame stay in that process's copy of the touched pages.
* **Bounded.**  Publishing a panel removes the panels it supersedes (same
  adjustment, a subset of its codes, no later end, no deeper start) and the
  panels most of whose stocks have moved on; at most ``FINDER_MAX_PANELS``
  (default 6) are kept, least recently used removed first.

Not guaranteed: live (today's) bars are never stored in a panel; requests for
fewer than ``MIN_CODES`` stocks neither use nor write one.  Frames handed out
map the file: finder never writes into a published file (it publishes new
ones and unlinks old ones, which mapped frames survive), but a file changed
in place by something else shows through frames already handed out, and one
truncated under them faults on access, as with any memory map.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from filelock import FileLock

from .._paths import ensure_private_dir
from . import _memo

log = logging.getLogger("finder.cache")

VERSION = 1
FIELDS = ("open", "high", "low", "close", "volume", "value")
MIN_CODES = 20  # a panel pays off for many stocks; a few go per stock
# A panel is carried forward (extend) at most this many sessions in a row, then rebuilt from the
# histories once: a bound on how long a column lives without being read from a history again.
MAX_CARRIED = 20
_CHUNK = 1 << 20


def max_panels() -> int:
    try:
        return max(1, int(os.environ.get("FINDER_MAX_PANELS", "6")))
    except ValueError:
        return 6


def folder(store) -> Path:
    return Path(store.state) / "panels"


# -- identity of a stock's history ----------------------------------------------------------------
_prefix: dict[int, str] = {}


def _pointer_file(store, code: str) -> str:
    # The store's pointer file for the stock: the one thing that changes whenever its history does.
    # (A string prefix: building 2,500 pathlib paths cost more than the 2,500 stats.)
    pre = _prefix.get(id(store))
    if pre is None:
        index = getattr(store, "index", None)
        example = str(index.path("000000") if index is not None else store._pointer_path("000000"))
        pre = _prefix[id(store)] = example[: -len("000000.json")]
    return f"{pre}{code}.json"


def signature(store, code: str) -> list[int] | None:
    """The identity of the stock's current pointer file, or None when it has none."""
    try:
        st = os.stat(_pointer_file(store, code))
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size]


# -- one stored panel --------------------------------------------------------------------------------
@dataclass
class Panel:
    id: str
    path: Path
    adjusted: bool
    end: np.datetime64
    codes: list[str]
    col: dict[str, int]
    sigs: list[list[int] | None]
    events: list[np.ndarray]
    full: np.ndarray       # bool per code: the panel holds every bar of the stock up to ``end``
    rows: np.ndarray       # bars per code in the panel
    last_event: np.ndarray  # per code, its newest corporate action on or before ``end`` (NaT if none)
    dates: np.ndarray      # datetime64[D]
    crc: list[int]
    stamp: list[int]       # data.npy's (inode, size, mtime, ctime) when written: unchanged means unwritten since
    shape: tuple[int, int, int]
    built: float
    format: int | None = None  # the cache format (``_memo.FORMAT_VERSION``) of the histories it came from
    carried: int = 0           # sessions carried forward since the panel was last built from histories
    boot: str | None = None    # the boot it was written in (see ``_open``)

    @classmethod
    def from_meta(cls, pid: str, path: Path, meta: dict) -> "Panel":
        if meta.get("version") != VERSION:
            raise ValueError("another panel format")
        codes = [str(c) for c in meta["codes"]]
        events = [np.array(e, dtype="datetime64[D]") for e in meta["events"]]
        end = np.datetime64(meta["end"], "D")
        last = np.array([d or "NaT" for d in meta["last_event"]], dtype="datetime64[D]")
        dates = np.array(meta["dates"], dtype="datetime64[D]")
        shape = tuple(int(x) for x in meta["shape"])
        if (shape != (len(FIELDS), len(codes), len(dates)) or
                not len(meta["sigs"]) == len(meta["events"]) == len(meta["full"]) == len(meta["rows"])
                == len(meta["last_event"]) == len(codes)):
            raise ValueError("inconsistent panel description")
        return cls(pid, path, bool(meta["adjusted"]), end, codes,
                   {c: j for j, c in enumerate(codes)}, meta["sigs"], events,
                   np.array(meta["full"], dtype=bool), np.array(meta["rows"], dtype=np.int64), last, dates, [int(x) for x in meta["crc"]],
                   [int(x) for x in meta["stamp"]], shape,
                   float(meta["built"]), meta.get("format"), int(meta.get("carried", 0)), meta.get("boot"))


_meta_cache: dict[tuple[str, str], Panel] = {}    # panels are immutable once published
_verified: set[tuple[str, str, int]] = set()      # (folder, id, field) whose CRC matched in this process
_lock = threading.Lock()


def _damaged(store, pid: str, why: str, locked: bool = False) -> None:
    store.warn_once(f"panel:{pid}", f"damaged panel file {pid} ({why}); served per stock and rebuilt")
    _remove(store, pid, locked)


def _remove(store, pid: str, locked: bool = False) -> None:
    base = folder(store)
    if locked:  # the caller holds the folder's lock (a second FileLock on it would wait for ourselves)
        shutil.rmtree(base / pid, ignore_errors=True)
    else:
        try:
            with FileLock(str(base / ".lock"), timeout=30):
                shutil.rmtree(base / pid, ignore_errors=True)
        except Exception:
            shutil.rmtree(base / pid, ignore_errors=True)
    with _lock:
        _meta_cache.pop((str(base), pid), None)


def remove_path(path: Path) -> bool:
    """Remove one published panel folder under the panel folder's lock (for ``cache.clear``/``prune``)."""
    path = Path(path)
    base = path.parent
    try:
        with FileLock(str(base / ".lock"), timeout=60):
            there = path.is_dir()
            shutil.rmtree(path, ignore_errors=True)
    except Exception:  # a lock we cannot take: removing a panel is still safe (a reader treats it as a miss)
        there = path.is_dir()
        shutil.rmtree(path, ignore_errors=True)
    with _lock:
        _meta_cache.pop((str(base), path.name), None)
    return there


def forget_folder(base: Path) -> None:
    """Drop this process's descriptions of the panels of ``base`` (after the folder was cleared)."""
    with _lock:
        for key in [k for k in _meta_cache if k[0] == str(base)]:
            del _meta_cache[key]


def codes_of(path: Path) -> list[str]:
    """The codes a published panel holds ([] when its description is unreadable)."""
    try:
        return [str(c) for c in _unseal((Path(path) / "meta.json").read_bytes())["codes"]]
    except Exception:
        return []


def panels(store, locked: bool = False) -> list[Panel]:
    """The published panels of the cache folder (a damaged description is removed).

    ``locked``: the caller holds the folder's lock.
    """
    base = folder(store)
    out = []
    try:
        entries = [e.name for e in os.scandir(base) if e.is_dir() and len(e.name) == 32]
    except OSError:
        return []
    for pid in entries:
        key = (str(base), pid)
        p = _meta_cache.get(key)
        if p is None:
            try:
                meta = _unseal((base / pid / "meta.json").read_bytes())
                p = Panel.from_meta(pid, base / pid, meta)
            except FileNotFoundError:
                continue  # removed by another process meanwhile
            except Exception as exc:
                _damaged(store, pid, f"meta.json: {type(exc).__name__}", locked)
                continue
            with _lock:
                _meta_cache[key] = p
        out.append(p)
    return out


# -- lookup --------------------------------------------------------------------------------------------
@dataclass
class Hit:
    """The part of a request a panel serves: ``codes`` (in request order) from ``panel``."""

    panel: Panel
    codes: list[str]
    data: np.ndarray        # the private (copy-on-write) map of data.npy
    as_of: set[str]         # stocks left out only for an action after ``end`` (a rebuild would not help)
    end: np.datetime64
    count: int


def find(store, codes: list[str], end: np.datetime64, count: int, adjusted: bool,
         fields: list[str]) -> Hit | None:
    """The panel serving most of ``codes`` at (end, count, adjusted), with the stocks it can serve.

    A stock is served when its pointer is unchanged since the panel was built,
    the panel holds its last ``count`` bars on or before ``end`` and (adjusted)
    no corporate action of it lies in ``(end, panel end]``.
    """
    if len(codes) < MIN_CODES:
        return None
    best = None
    for p in panels(store):
        if p.adjusted != adjusted or p.end < end:
            continue
        n_in = sum(1 for c in codes if c in p.col)
        if n_in and (best is None or (n_in, p.built) > best[0]):
            best = ((n_in, p.built), p)
    if best is None:
        return None
    p = best[1]
    hi = int(np.searchsorted(p.dates, end, "right"))
    served = []
    as_of = set()
    # An action in (end, panel end] changes the stock's as-of prices: the per-stock path rebuilds them.
    acted = set(np.array(p.codes)[p.last_event > end]) if adjusted and end < p.end else set()
    for c in codes:
        j = p.col.get(c)
        if j is None or p.sigs[j] is None or signature(store, c) != p.sigs[j]:
            continue
        if c in acted:
            as_of.add(c)
            continue
        served.append(c)
    if not served:
        return Hit(p, [], None, as_of, end, count) if as_of else None
    data = _open(store, p, fields)
    if data is None:
        return None
    # Depth: each served stock needs ``count`` bars on or before ``end`` in the panel, or all of its bars.
    idx = np.array([p.col[c] for c in served])
    if hi == p.shape[2]:
        rows = p.rows[idx]
    else:
        rows = (~np.isnan(data[3][idx, :hi])).sum(axis=1)
    enough = (rows >= count) | p.full[idx]
    if not enough.all():
        served = [c for c, ok in zip(served, enough) if ok]
    if not served:
        return Hit(p, [], None, as_of, end, count) if as_of else None
    return Hit(p, served, data, as_of, end, count)


def _open(store, p: Panel, fields: list[str]) -> np.ndarray | None:
    """Map the panel's data privately after checking its size, header and (once per process) the CRCs."""
    path = p.path / "data.npy"
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
            if tuple(shape) != p.shape or fortran or dtype != np.dtype("float64"):
                raise ValueError("header does not match meta.json")
            st = os.fstat(fh.fileno())
            size = st.st_size
            block = p.shape[1] * p.shape[2] * 8
            if size != offset + len(FIELDS) * block:
                raise ValueError(f"size {size}, expected {offset + len(FIELDS) * block}")
            # Any write to the file since it was published changes its mtime and ctime (ctime cannot
            # be set back): then, and only then, the CRCs are read in full before a value is served.
            # A file written in an earlier boot is checked once per process too: a power cut before
            # its pages reached the disk leaves the same stamp over zeros (finder does not fsync).
            untouched = ([st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns] == p.stamp
                         and p.boot == _boot_id())
            need = () if untouched else ("close",) + tuple(fields)
            for f in dict.fromkeys(need):
                k = FIELDS.index(f)
                key = (str(p.path.parent), p.id, k)
                if key in _verified:
                    continue
                # Read through the file, not the map: checking must not add the pages to this process's memory.
                crc, pos, left = 0, offset + k * block, block
                while left:
                    chunk = os.pread(fh.fileno(), min(_CHUNK, left), pos)
                    if not chunk:
                        raise ValueError("short read")
                    crc = zlib.crc32(chunk, crc)
                    pos += len(chunk)
                    left -= len(chunk)
                if crc != p.crc[k]:
                    raise ValueError(f"checksum of {f} does not match")
                with _lock:
                    _verified.add(key)
            # mode "c": a private map; writes by a user never reach the file or another load.
            return np.memmap(fh, dtype="float64", mode="c", offset=offset, shape=p.shape)
    except FileNotFoundError:
        return None  # removed by a newer panel meanwhile: a miss
    except Exception as exc:
        _damaged(store, p.id, f"{type(exc).__name__}: {exc}")
        return None


def frames(hit: Hit, fields: list[str]) -> dict[str, pd.DataFrame]:
    """The served stocks' frames, one per field: the last ``count`` bars of each on or before ``end``."""
    p, data = hit.panel, hit.data
    idx = [p.col[c] for c in hit.codes]
    hi = int(np.searchsorted(p.dates, hit.end, "right"))
    whole = idx == list(range(len(p.codes))) and hi == p.shape[2]
    columns = pd.Index(hit.codes, name="code")
    # The whole file is the answer when no stock has more than ``count`` bars in it.
    if whole and bool((p.rows <= hit.count).all()):
        index = pd.DatetimeIndex(p.dates.astype("datetime64[ns]"), name="date")
        # A view of the private map, transposed: dates × codes, each stock's column contiguous.
        return {f: pd.DataFrame(data[FIELDS.index(f)].T, index=index, columns=columns, copy=False)
                for f in fields}
    ii = np.array(idx)
    present = ~np.isnan(data[3][ii, :hi])
    after = np.cumsum(present[:, ::-1], axis=1)[:, ::-1]  # bars at or after each row, per stock
    keep = present & (after <= hit.count)
    rows = keep.any(axis=0)
    index = pd.DatetimeIndex(p.dates[:hi][rows].astype("datetime64[ns]"), name="date")
    out = {}
    for f in fields:
        a = np.array(data[FIELDS.index(f)][ii, :hi])
        a[~keep] = np.nan
        out[f] = pd.DataFrame(a[:, rows].T, index=index, columns=columns, copy=False)
    return out


def arrays(hit: Hit) -> dict[str, tuple]:
    """Per stock (dates, prices (n, 4), volume, value): copies, in the per-stock path's shape."""
    fr = frames(hit, list(FIELDS))
    out = {}
    dates = fr["close"].index.values.astype("datetime64[D]")
    for c in hit.codes:
        close = fr["close"][c].to_numpy()
        ok = ~np.isnan(close)
        prices = np.column_stack([fr[f][c].to_numpy()[ok] for f in ("open", "high", "low", "close")])
        out[c] = (dates[ok], prices, fr["volume"][c].to_numpy()[ok].astype("int64"),
                  fr["value"][c].to_numpy()[ok].astype("int64"))
    return out


# -- building ---------------------------------------------------------------------------------------------
@dataclass
class Part:
    """One stock's column of a panel to be: its bars from the request's depth up to its history's anchor."""

    sig: list[int]
    anchor: np.datetime64
    dates: np.ndarray
    prices: np.ndarray
    volume: np.ndarray
    value: np.ndarray
    full: bool
    events: np.ndarray
    carried: int = 0  # sessions carried forward (extend) since read from a history


def part(sig: list[int] | None, hist, end: np.datetime64, count: int, adjusted: bool,
         upto: np.datetime64 | None = None) -> Part | None:
    """``hist``'s last ``count`` bars on or before ``end`` and every bar after up to ``upto`` (default: its
    anchor), adjusted as of ``upto``."""
    top = hist.anchor if upto is None else min(upto, hist.anchor)
    if sig is None or top < end or not hist.covers(end, count) or hist.rows_on_or_before(end) == 0:
        return None
    lo = max(0, hist.rows_on_or_before(end) - count)
    hi = hist.rows_on_or_before(top)
    dates, prices, volume, value = hist.arrays(top, hi - lo, adjusted)
    return Part(sig, top, dates, np.asarray(prices), np.asarray(volume), np.asarray(value),
                bool(lo == 0 and hist.reached_start), hist.events.ex)


def build(store, parts: dict[str, Part], end: np.datetime64, count: int, adjusted: bool,
          reload, carried: int = 0) -> tuple[Panel, np.ndarray] | None:
    """Publish the panel of ``parts`` (request order); (panel, a private map of its data), or None when
    too few stocks or the folder refuses.

    The panel ends at the oldest anchor (>= ``end``).  A stock whose history
    reaches further is cut there; if a corporate action of it lies after that
    end, its prices as of the panel's end are rebuilt by ``reload(code, end)``
    (a fresh :func:`part` up to that end, or None to leave the stock out).
    ``carried``: how many sessions the oldest column was carried forward
    (:func:`extend`) since it was read from a history.
    """
    if len(parts) < MIN_CODES or not store.writable:
        return None
    pend = min(p.anchor for p in parts.values())
    names = []
    for c, p in list(parts.items()):
        if p.anchor > pend:
            if adjusted and ((p.events > pend) & (p.events <= p.anchor)).any():
                p = reload(c, pend)
                if p is None:
                    parts.pop(c)
                    continue
            keep = p.dates <= pend
            p = Part(p.sig, pend, p.dates[keep], p.prices[keep], p.volume[keep], p.value[keep], p.full, p.events)
            parts[c] = p
        names.append(c)
    if len(names) < MIN_CODES:
        return None
    all_dates = np.unique(np.concatenate([parts[c].dates for c in names]))
    shape = (len(FIELDS), len(names), len(all_dates))

    def fill(data: np.ndarray) -> None:
        data[...] = np.nan
        for j, c in enumerate(names):
            p = parts[c]
            rows = np.searchsorted(all_dates, p.dates)
            for k in range(4):
                data[k, j, rows] = p.prices[:, k]
            data[4, j, rows] = p.volume
            data[5, j, rows] = p.value

    meta = {
        "version": VERSION,
        "adjusted": bool(adjusted),
        "end": str(pend),
        "codes": names,
        "dates": [str(d) for d in all_dates],
        "sigs": [parts[c].sig for c in names],
        "events": [[str(e) for e in parts[c].events] for c in names],
        "full": [parts[c].full for c in names],
        "rows": [int(len(parts[c].dates)) for c in names],
        "last_event": [_last_event(parts[c].events, pend) for c in names],
        "shape": list(shape),
        "built": time.time(),
        "format": _memo.FORMAT_VERSION,
        "carried": carried,
        "boot": _boot_id(),
    }
    panel = _publish(store, shape, fill, meta)
    if panel is None:
        return None
    data = _open(store, panel, list(FIELDS))  # a private map of what was just written
    return (panel, data) if data is not None else None


def extend(store, codes: list[str], end: np.datetime64, count: int, adjusted: bool,
           read: Callable[[str], tuple[dict | None, list[int] | None]] | None = None) -> dict[str, Part]:
    """Parts at ``end`` for the stocks an older panel holds, carried forward by their pointers' tails.

    After a refresh every pointer has moved, so no panel serves the new
    session, and rebuilding one from 2,500 histories costs seconds.  But a
    stock's bars up to the old panel's end are unchanged unless a corporate
    action changed their adjustment, and its pointer holds its newest bars
    (``_index.TAIL``).  So a stock's column is the old column plus the tail's
    bars after the old end when:

    * its pointer reaches ``end`` and its tail holds every bar after the old end;
    * its actions up to the old end are the ones the panel was built with, and
      none lies after the old end (then values as of the old end, as of ``end``
      and as of the anchor agree);
    * the result still holds ``count`` bars, or all of the stock's bars.

    Each column keeps the old column's depth (a sliding window), so a panel
    refreshed every night stays the same size.  The parts carry the identity
    of the pointer their tail was read from.  Stocks that do not qualify are
    left out (the per-stock path serves them).  ``read(code)`` gives a
    stock's pointer and its file's identity (default: read it now).
    """
    if len(codes) < MIN_CODES or not adjusted:  # (the tails are adjusted bars; raw panels rebuild)
        return {}
    best = None
    for p in panels(store):
        if p.adjusted != adjusted or p.end >= end or p.format != _memo.FORMAT_VERSION or p.carried >= MAX_CARRIED:
            continue
        n_in = sum(1 for c in codes if c in p.col)
        if n_in >= MIN_CODES and (best is None or (n_in, p.end, p.built) > best[0]):
            best = ((n_in, p.end, p.built), p)
    if best is None:
        return {}
    p = best[1]
    data = _open(store, p, list(FIELDS))
    if data is None:
        return {}
    read = read or store.index.read_stamped
    base = data.view(np.ndarray)  # plain array views: slicing a memmap costs more than the copy
    present = ~np.isnan(base[3])   # (codes, dates): where each stock has a bar
    known = [[str(e) for e in ev] for ev in p.events]
    old_end, new_end = str(p.end), str(end)
    out: dict[str, Part] = {}
    why: dict[str, int] = {}
    for c in codes:
        j = p.col.get(c)
        if j is None:
            got = "not in the panel"
        else:
            ptr, sig = read(c)
            try:
                got = "no pointer" if ptr is None or sig is None else \
                    _carried(p, j, base, present[j], known[j], ptr, sig, old_end, new_end, count, p.carried + 1)
            except (KeyError, IndexError, TypeError, ValueError):
                got = "unusable pointer"  # the right version but not the right shape: per stock
        if isinstance(got, Part):
            out[c] = got
        else:
            why[got] = why.get(got, 0) + 1
    if why:
        log.info("finder: panel of %s carried to %s for %d stocks; not for %s", old_end, new_end, len(out),
                 ", ".join(f"{n} ({w})" for w, n in sorted(why.items())))
    return out


def _carried(p: Panel, j: int, data: np.ndarray, present: np.ndarray, known: list[str], ptr: dict,
             sig: list[int], old_end: str, end: str, count: int, carried: int) -> Part | str:
    """Stock ``j`` of panel ``p`` carried to ``end`` by its pointer's tail, or why not (see :func:`extend`).

    Dates are compared as ISO strings (their order is the dates' order): this runs once per stock.
    """
    try:
        anchor = ptr["anchor"]
        tail = ptr["tail"]
        tail_dates = tail["dates"]
        events = ptr.get("events", [])
        rows = int(ptr["rows"])
    except (KeyError, TypeError, ValueError):
        return "no tail"  # a pointer of an older finder: per stock
    if anchor < end:
        return "behind"
    if any(old_end < e <= anchor for e in events):
        return "new action"
    if sorted(e for e in events if e <= old_end) != sorted(e for e in known if e <= old_end):
        return "other actions"  # an action the panel does not know of: its adjusted values changed
    if len(tail_dates) < rows and (not tail_dates or tail_dates[0] > old_end):
        return "gap"  # bars after the old end that the tail does not hold
    old_rows = int(present.sum())
    if old_rows == 0:
        return "empty"
    new = [i for i, d in enumerate(tail_dates) if old_end < d <= end]
    dates = p.dates[present]
    values = data[:, j, present].T  # (rows, 6), a copy
    if new:
        dates = np.concatenate([dates, np.array([tail_dates[i] for i in new], dtype="datetime64[D]")])
        values = np.concatenate([values, np.array([tail["bars"][i] for i in new], dtype="float64").reshape(-1, 6)])
    keep = min(len(dates), max(count, old_rows))
    full = bool(p.full[j]) and keep == len(dates)
    if keep < count and not full:
        return "shallow"  # too shallow for this request: the per-stock path reads deeper
    dates, values = dates[-keep:], values[-keep:]
    return Part(list(sig), np.datetime64(end, "D"), dates, values[:, :4], values[:, 4], values[:, 5], full,
                np.array(events, dtype="datetime64[D]"), carried)


_BOOT: list[str | None] = []


def _boot_id() -> str | None:
    """This boot's id (Linux), or None where the system does not say."""
    if not _BOOT:
        try:
            with open("/proc/sys/kernel/random/boot_id") as fh:
                _BOOT.append(fh.read().strip() or None)
        except OSError:
            _BOOT.append(None)
    return _BOOT[0]


def _seal(meta: dict) -> bytes:
    """meta.json's bytes: the description and a CRC-32 of it (damage that still parses as JSON is caught)."""
    body = json.dumps(meta, sort_keys=True)
    return json.dumps({"crc": zlib.crc32(body.encode()), "body": body}).encode()


def _unseal(raw: bytes) -> dict:
    outer = json.loads(raw)
    body = outer["body"]
    if zlib.crc32(body.encode()) != outer["crc"]:
        raise ValueError("meta.json checksum does not match")
    return json.loads(body)


def _last_event(events: np.ndarray, end: np.datetime64) -> str | None:
    before = events[events <= end]
    return str(before.max()) if len(before) else None


def _publish(store, shape: tuple[int, int, int], fill: Callable[[np.ndarray], None], meta: dict) -> Panel | None:
    """Write a panel's data (``fill`` writes it into the file's map) and description, then publish both.

    The data is written straight into the file's pages (one 70 MB write, not an
    array in memory and a copy of it), after the file's blocks are allocated:
    a full disk then fails here with ENOSPC instead of killing the process with
    SIGBUS on a write into the map.
    """
    base = ensure_private_dir(folder(store))
    pid = uuid.uuid4().hex
    tmp = base / f".tmp-{pid}"
    try:
        ensure_private_dir(tmp)
        path = tmp / "data.npy"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        data = np.lib.format.open_memmap(path, mode="w+", dtype="float64", shape=shape)
        try:
            if hasattr(os, "posix_fallocate"):  # Linux; elsewhere a full disk may fault the write instead
                with open(path, "r+b") as fh:
                    os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
            fill(data)
            meta["crc"] = [zlib.crc32(data[k]) for k in range(len(FIELDS))]
        finally:
            del data  # the last reference: unmapped now
        st = os.stat(path)
        meta["stamp"] = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        fd = os.open(tmp / "meta.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_seal(meta))
        os.rename(tmp, base / pid)  # published whole, or not at all
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        store.cannot_write("a panel", exc)
        return None
    panel = Panel.from_meta(pid, base / pid, meta)
    _prune(store, panel)
    return panel


def _supersedes(new: Panel, old: Panel) -> bool:
    return (new.adjusted == old.adjusted and new.end >= old.end and set(old.codes) <= set(new.col)
            and (len(new.dates) == 0 or len(old.dates) == 0 or new.dates[0] <= old.dates[0]))


def _prune(store, new: Panel) -> None:
    """Remove what ``new`` supersedes, panels whose stocks mostly moved on, and the least used over the cap."""
    base = folder(store)
    try:
        with FileLock(str(base / ".lock"), timeout=60):
            if not (base / new.id).is_dir():
                return  # another writer's identical panel already replaced ours
            others = [p for p in panels(store, locked=True) if p.id != new.id]
            drop = []
            for p in others:
                if _supersedes(new, p):
                    drop.append(p)
                    continue
                stale = sum(1 for j, c in enumerate(p.codes) if c in new.col and new.sigs[new.col[c]] != p.sigs[j])
                if stale * 2 > len(p.codes):
                    drop.append(p)
            keep = [p for p in others if p not in drop]
            if len(keep) + 1 > max_panels():
                keep.sort(key=lambda p: _used(p))
                drop += keep[: len(keep) + 1 - max_panels()]
            for p in drop:
                shutil.rmtree(p.path, ignore_errors=True)
                with _lock:
                    _meta_cache.pop((str(base), p.id), None)
            if drop:
                log.info("finder: removed %d superseded panel(s)", len(drop))
    except Exception as exc:  # only bounds growth; the next publish tries again
        log.info("finder: panel cleanup skipped (%s)", exc)


def _used(p: Panel) -> float:
    try:
        return os.stat(p.path / "meta.json").st_mtime
    except OSError:
        return 0.0


def touch(hit: Hit) -> None:
    """Mark the panel used (its meta.json mtime, at most every 10 minutes), for the least-recently-used bound."""
    try:
        meta = hit.panel.path / "meta.json"
        if time.time() - os.stat(meta).st_mtime > 600:
            os.utime(meta)
    except OSError:
        pass
