"""The cache store: joblib.Memory entries, one pointer per stock, and single-flight locks.

Layout under the cache folder::

    joblib/...                 joblib.Memory's own entries (walks, histories, live bars)
    finder/index/<code>.json   pointer: which history entry is current for the stock
    finder/locks/<code>.lock   held while one process fetches that stock
    finder/tokens/, finder/ratelimit/   the client's shared token and pacing slots

How a request is served (``ensure``):

1. Read the stock's pointer; if its history covers the request, load it (a
   joblib hit) — no lock, no request.
2. Otherwise take the stock's file lock (single flight: other processes asking
   for the same stock wait here, then find the work done), re-read the
   pointer, and extend the history:

   * nothing yet: one raw and one adjusted walk at the newest final session,
     deep enough for the request, rounded up to whole 600-row pages (a page
     costs one request whatever it holds);
   * newer sessions needed: one adjusted walk from our last row to the newest
     final session; if its overlap row still equals ours, no corporate action
     happened and its rows are raw and adjusted at once (one request);
     otherwise a fresh raw and adjusted pair replaces the history;
   * older rows needed: a deeper pair at the same anchor.

   The assembled history is memoized under the list of walks it came from,
   and the pointer is replaced atomically.

Guarantees: a pointer only ever names a history built from complete walks;
results are identical whichever process fetched them.  Not guaranteed: a
stock whose walk keeps failing is fetched again on each call (errors are never
cached).
"""

from __future__ import annotations

import contextlib
import errno
import json
import pickle
import weakref
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from .. import calendar
from .._exceptions import CacheError, KiwoomError
from .._models import DAILY_PAGE_SIZE
from .._paths import cache_dir, ensure_private_dir, state_dir, unsafe_reason, write_private_file
from . import _fetch, _memo
from ._history import History, Walk, adds_no_action

log = logging.getLogger("finder.cache")

LIVE_TTL_DEFAULT = 60.0
# Histories kept in memory per process. Bounded, so a pass over a whole market reuses
# memory instead of growing by ~100 kB a stock; a backtest over a few hundred stocks fits.
_LRU_SIZE = int(os.environ.get("FINDER_MEMORY_HISTORIES", "600"))


def live_ttl() -> float:
    raw = os.environ.get("FINDER_LIVE_TTL")
    try:
        return float(raw) if raw else LIVE_TTL_DEFAULT
    except ValueError:
        return LIVE_TTL_DEFAULT


def _live_is_fresh(metadata: dict) -> bool:
    # joblib passes the entry's metadata; its "time" is when the bar was fetched.
    fetched = metadata.get("time") if metadata else None
    return fetched is not None and time.time() - float(fetched) < live_ttl()


def _sessions_after(start: np.datetime64, end: np.datetime64) -> int:
    """Sessions in ``(start, end]``: how many rows lie after ``start`` up to ``end``."""
    return max(calendar.sessions_between_count(pd.Timestamp(start), pd.Timestamp(end)) - 1, 0)


def pages(rows: int) -> int:
    """Rows rounded up to whole pages: a page costs one request whether it holds 1 row or 600."""
    return max(1, -(-rows // DAILY_PAGE_SIZE)) * DAILY_PAGE_SIZE


class Stats:
    """Hits and misses of this process, per cache folder."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.lock = threading.Lock()

    def add(self, hit: bool) -> None:
        with self.lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1


class Store:
    """One cache folder: its joblib.Memory, pointers, locks and an in-process LRU of histories."""

    _instances: dict[Path, "Store"] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def for_root(cls, root: Path) -> "Store":
        store = cls._instances.get(root)  # fast path: the client hands over a resolved path
        if store is not None:
            return store
        root = Path(root).resolve()
        with cls._instances_lock:
            store = cls._instances.get(root)
            if store is None:
                store = cls._instances[root] = cls(root)
            return store

    @classmethod
    def for_client(cls, client) -> "Store":
        return cls.for_root(client.cache_root)

    def __init__(self, root: Path) -> None:
        import joblib

        self.root = Path(root)
        try:
            ensure_private_dir(self.root)
        except OSError:
            pass  # cannot even be created (under a file, a read-only parent): the probe below says so
        self.state = state_dir(self.root)
        self.unsafe = unsafe_reason(self.root)
        if self.unsafe:
            log.warning("finder: %s", self.unsafe)
        self.writable = self._probe_writable()
        if self.writable and self.root == Path(cache_dir()).resolve():
            calendar.save_sessions()  # spares the next process the XKRX build
        self.stats = Stats()
        self._lru: OrderedDict = OrderedDict()
        self._lru_lock = threading.Lock()
        # Whole adjusted frames per stock, for get_ohlcv hits (same bound as the histories).
        self._frames: OrderedDict = OrderedDict()
        # The newest history loaded per stock (weak: the LRU above decides what stays in memory).
        self._latest: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        try:
            memory = joblib.Memory(location=str(self.root), verbose=0)
        except OSError:
            # The folder cannot be created: nothing is stored or loaded, every call is served uncached.
            memory = joblib.Memory(location=None, verbose=0)
        self.memory = memory
        self._walk = memory.cache(_memo.walk, ignore=["client"])
        self._history = memory.cache(_memo.history, ignore=["client"])
        self._live = memory.cache(_memo.live, ignore=["client"], cache_validation_callback=_live_is_fresh)
        self._stock_list = memory.cache(_memo.stock_list, ignore=["client"])
        self._quote_bar = memory.cache(_memo.quote_bar, ignore=["client"])
        self._frame = memory.cache(_memo.frame, ignore=["client"])
        self._warned: set[str] = set()

    # -- safety -----------------------------------------------------------------
    def _probe_writable(self) -> bool:
        try:
            ensure_private_dir(self.state)
            probe = self.state / f".probe-{os.getpid()}-{threading.get_ident()}"
            try:
                # Some bytes, not an empty file: a full disk often still creates empty files.
                probe.write_bytes(b"\0" * 4096)
            finally:
                probe.unlink(missing_ok=True)
            return True
        except OSError:
            return False

    def cannot_write(self, what: str, exc: BaseException | str) -> None:
        """A write into the cache failed: stop writing (and warn once) only if the folder really refuses writes.

        joblib reports a failed store for a full or read-only disk, but also when
        another process (a prune, a clear) removed an entry's folder mid-write;
        that is a race, not a read-only folder, and must not switch caching off.
        """
        text = str(exc)
        if not self._probe_writable() or any(t in text for t in ("No space left", "Disk quota", "Read-only file system")):
            self.writable = False
            self.warn_once("write", f"cannot write to the cache folder {self.root} ({what}: {text.splitlines()[0][:160]}); "
                                    "serving data uncached from now on in this process")
        else:
            log.info("finder: could not store %s (%s); the folder is writable, so it was a race and is retried "
                     "on the next call", what, text.splitlines()[0][:160])

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("finder: %s", message)
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    def check_safe(self) -> None:
        """Refuse to load pickles from a folder others can write, unless explicitly allowed."""
        if self.unsafe and os.environ.get("FINDER_ALLOW_SHARED_CACHE") != "1":
            raise CacheError(f"refusing to load the cache: {self.unsafe}")

    @property
    def usable(self) -> bool:
        return self.writable

    # -- pointers -----------------------------------------------------------------
    def _pointer_path(self, code: str) -> Path:
        return self.state / "index" / f"{code}.json"

    def read_pointer(self, code: str) -> dict | None:
        try:
            data = json.loads(self._pointer_path(code).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:  # pointers are replaced atomically: this is damage, not a race
            self.warn_once(f"pointer:{code}", f"unreadable cache index entry for {code} ({type(exc).__name__}); "
                                              "rebuilding it")
            return None
        if not isinstance(data, dict) or data.get("version") != _memo.FORMAT_VERSION:
            # another format: treated as a miss, rebuilt, then replaced
            self.warn_once("format", f"the cache in {self.root} holds entries of another cache format (version "
                                     f"{data.get('version') if isinstance(data, dict) else '?'!r}, this finder "
                                     f"writes {_memo.FORMAT_VERSION}); they are ignored and rebuilt as asked for")
            return None
        return data

    def write_pointer(self, code: str, spec: tuple, history: History, entry: str | None, client=None) -> None:
        frame_entry = None
        if entry is not None and client is not None:
            try:  # the ready adjusted frame that get_ohlcv hits slice (see frame_fast)
                self._call(self._frame, code, spec, _memo.FORMAT_VERSION, client=client)
                frame_entry = self._frame._get_args_id(code, spec, _memo.FORMAT_VERSION)
            except Exception as exc:  # only a speed-up: without it hits take the array path
                log.debug("%s: no frame entry (%s)", code, exc)
        data = {
            "version": _memo.FORMAT_VERSION,
            "code": code,
            "spec": [list(s) for s in spec],
            "entry": entry,  # joblib's id of the history entry, for a hash-free load
            "frame": frame_entry,
            "events": [str(e) for e in history.events.ex],
            "anchor": str(history.anchor),
            "first": str(history.first) if history.first is not None else None,
            "rows": int(len(history.dates)),
            "reached_start": history.reached_start,
        }
        write_private_file(self._pointer_path(code), json.dumps(data).encode())
        with self._lru_lock:
            self._frames.pop(code, None)  # the next hit loads the new frame

    def lock(self, code: str) -> FileLock:
        folder = ensure_private_dir(self.state / "locks")
        return FileLock(str(folder / f"{code}.lock"))

    # -- memoized calls ---------------------------------------------------------
    def _call(self, func, *args, client=None):
        """Call a memoized function; return (value, was_computed).  Fails loudly on disk trouble."""
        _fetch.computed.flag = False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = func(*args, client=client)
        computed = bool(getattr(_fetch.computed, "flag", False))
        load_failed = store_failed = False
        for w in caught:
            text = str(w.message)
            if "Unable to cache to disk" in text:
                store_failed = True
                self.cannot_write("an entry", text)
            elif "Persisting input" in text:
                pass  # joblib's note that writing metadata.json was slow (a busy disk): not a failure
            elif "Exception while loading" in text or "Loading" in text:
                load_failed = True
                self.warn_once("load", f"a damaged cache entry was refetched ({text.splitlines()[0][:160]})")
            else:
                warnings.warn(w.message, w.category)
        if load_failed and store_failed and self.writable:
            # The damaged entry could not be replaced in place (e.g. a directory where output.pkl
            # should be): remove it, so the next call stores a good one instead of failing again.
            try:
                self.memory.store_backend.clear_item((func.func_id, func._get_args_id(*args)))
            except Exception:
                pass
        return value, computed

    def walk(self, client, code: str, adjusted: bool, base_dt: str, depth: int) -> Walk:
        value, _ = self._call(self._walk, code, base_dt, int(depth), bool(adjusted), _memo.FORMAT_VERSION, client=client)
        if not isinstance(value, Walk):
            raise CacheError(f"cache entry for {code} is not a walk")
        return value

    def frame_fast(self, code: str, end: np.datetime64, count: int) -> pd.DataFrame | None:
        """The hot path of an adjusted get_ohlcv hit: slice the stored frame, or None to take the full path.

        Usable when the pointer's history covers ``end`` and no corporate action
        lies after ``end`` (then Kiwoom's numbers as of the anchor are the
        numbers as of ``end``).
        """
        entry = self._frames.get(code)
        if entry is None:
            ptr = self.read_pointer(code)
            if not ptr or not ptr.get("frame"):
                return None
            try:
                full = pickle.loads(self._read_blob((self._frame.func_id, ptr["frame"])))
            except Exception:
                return None  # missing or damaged: the full path rebuilds and warns
            if not isinstance(full, pd.DataFrame):
                return None
            events = tuple(np.datetime64(e, "D") for e in ptr.get("events", []))
            entry = (np.datetime64(ptr["anchor"], "D"), events, bool(ptr.get("reached_start")), full)
            with self._lru_lock:
                self._frames[code] = entry
                if len(self._frames) > _LRU_SIZE:
                    self._frames.popitem(last=False)
        anchor, events, reached_start, full = entry
        if end > anchor or any(end < e <= anchor for e in events):
            return None
        hi = int(full.index.searchsorted(pd.Timestamp(str(end)), side="right"))
        if hi < count and not reached_start:
            return None
        self.stats.add(True)
        return full.iloc[max(0, hi - count):hi]

    def forget(self, code: str | None = None) -> None:
        """Drop in-memory histories (all, or one stock's), e.g. after clearing or pruning."""
        with self._lru_lock:
            if code is None:
                self._lru.clear()
                self._latest.clear()
                self._frames.clear()
            else:
                for key in [k for k in self._lru if k[0] == code]:
                    del self._lru[key]
                self._latest.pop(code, None)
                self._frames.pop(code, None)

    def _read_blob(self, call_id: tuple) -> bytes:
        """The bytes joblib stored for a history entry.

        joblib writes a bytes result as a plain pickle stream (its array wrappers only
        appear for numpy arrays), so the C unpickler reads it several times faster than
        joblib's pure-Python one; anything unexpected goes through joblib's own loader.
        """
        path = os.path.join(self.memory.store_backend.location, *call_id[0].split("/"), call_id[1], "output.pkl")
        try:
            with open(path, "rb") as fh:
                blob = pickle.load(fh)
        except FileNotFoundError:
            raise KeyError(call_id) from None
        except Exception:
            blob = self.memory.store_backend.load_item(call_id, verbose=0)
        if not isinstance(blob, bytes):
            raise TypeError(f"unexpected {type(blob).__name__}")
        return blob

    def quote_bar(self, client, code: str, session: str) -> Walk:
        value, _ = self._call(self._quote_bar, code, session, _memo.FORMAT_VERSION, client=client)
        if not isinstance(value, Walk):
            raise CacheError(f"cache entry for {code} is not a quote bar")
        return value

    def load_history(self, client, code: str, spec: tuple, entry: str | None = None) -> History:
        key = (code, spec)
        with self._lru_lock:
            hist = self._lru.get(key)
            if hist is not None:
                self._lru.move_to_end(key)
                return hist
        blob = None
        if entry:
            # The hot path: load joblib's entry by the id the pointer recorded, skipping the
            # argument hashing and bookkeeping of a full memoized call. Any trouble falls back
            # to that call, which checks, recomputes and warns.
            call_id = (self._history.func_id, entry)
            try:
                blob = self._read_blob(call_id)
            except (KeyError, FileNotFoundError):
                # pruned or cleared (FileNotFoundError: by another process between joblib's
                # existence check and its open): an ordinary miss, not damage
                blob = None
            except Exception as exc:
                blob = None
                self.warn_once(f"damaged:{code}", f"damaged cache entry for {code} ({type(exc).__name__}); "
                                                  "refetching it")
                self.memory.store_backend.clear_item(call_id)
        if blob is None:
            blob, _ = self._call(self._history, code, spec, _memo.FORMAT_VERSION, client=client)
        try:
            hist = History.from_bytes(blob)
        except Exception:
            # A blob that unpickles to garbage: drop the entry and rebuild it once.
            self.warn_once("blob", f"damaged history entry for {code}; rebuilding it")
            blob, _ = self._history.call(code, spec, _memo.FORMAT_VERSION, client=client)
            hist = History.from_bytes(blob)
        with self._lru_lock:
            self._lru[key] = hist
            self._latest[code] = hist
            if len(self._lru) > _LRU_SIZE:
                self._lru.popitem(last=False)
        return hist

    def live(self, client, code: str, session: pd.Timestamp) -> dict:
        value, _ = self._call(self._live, code, session.strftime("%Y-%m-%d"), _memo.FORMAT_VERSION, client=client)
        return value

    def stock_list(self, client, market: str) -> pd.DataFrame:
        self.check_safe()
        day = calendar.today().strftime("%Y-%m-%d")
        if not self.usable:
            return client.get_stock_list(market)
        value, _ = self._call(self._stock_list, market, day, _memo.FORMAT_VERSION, client=client)
        return value.copy()

    # -- the planner ------------------------------------------------------------
    def cached_history(self, client, code: str, pointer: dict | None = None) -> History | None:
        ptr = pointer if pointer is not None else self.read_pointer(code)
        if ptr is None:
            return None
        spec = tuple(tuple(s) for s in ptr["spec"])
        try:
            return self.load_history(client, code, spec, ptr.get("entry"))
        except KiwoomError as exc:
            # The history had to be rebuilt from its parts and one of them cannot be had any
            # more (e.g. a pruned quote bar of a past day): start this stock afresh.
            log.warning("%s: cached history could not be rebuilt (%s); fetching it afresh", code, exc)
            return None

    def ensure(self, client, code: str, end: np.datetime64, count: int, pointer: dict | None = None) -> History:
        """A history covering the last ``count`` bars on or before the final session ``end``.

        ``pointer``: the stock's pointer when the caller just read it (saves a read).
        """
        self.check_safe()
        # A history in memory that covers the request answers it exactly as a newer one would:
        # final bars never change, and adjusting as of ``end`` only uses actions up to ``end``.
        hist = self._latest.get(code)
        if hist is None or not hist.covers(end, count):
            hist = self.cached_history(client, code, pointer)
        if hist is not None and hist.covers(end, count):
            self.stats.add(True)
            return hist
        self.stats.add(False)
        with self._single_flight(code):
            hist = self.cached_history(client, code)  # another process may have done the work
            if hist is not None and hist.covers(end, count):
                return hist
            ptr = self.read_pointer(code)
            spec = tuple(tuple(s) for s in ptr["spec"]) if (ptr and hist is not None) else None
            spec = self._plan(client, code, hist, spec, end, count)
            hist = self.load_history(client, code, spec)
            if not hist.covers(end, count):
                # Can only happen if upstream shrank; never loop on it.
                log.warning("%s: history after refresh still lacks bars up to %s", code, end)
            try:  # joblib's own argument hash; without it reads take the slower full path
                entry = self._history._get_args_id(code, spec, _memo.FORMAT_VERSION)
            except Exception:
                entry = None
            if self.writable:
                try:
                    self.write_pointer(code, spec, hist, entry, client)
                except OSError as exc:  # full or read-only disk, or a damaged index: the data is still right
                    self.cannot_write(f"the index entry of {code}", exc)
            return hist

    @contextlib.contextmanager
    def _single_flight(self, code: str):
        """The stock's file lock; without it (a lock file that cannot be created) the work is done unlocked.

        The lock only saves duplicate fetches: entries and pointers are written
        atomically, so working without it is slower but never wrong.
        """
        lock = None
        try:
            lock = self.lock(code)
            lock.acquire()
        except OSError as exc:
            lock = None
            self.cannot_write(f"the lock of {code}", exc)
        try:
            yield
        finally:
            if lock is not None:
                lock.release()

    def _plan(self, client, code: str, hist: History | None, spec: tuple | None, end: np.datetime64, count: int) -> tuple:
        newest = np.datetime64(calendar.latest_final_session().date(), "D")
        target = max(end, newest)
        fmt = lambda d: str(np.datetime64(d, "D"))  # noqa: E731
        if hist is None or spec is None:
            depth = pages(count + _sessions_after(end, target))
            return (("raw", fmt(target), depth), ("adj", fmt(target), depth))
        base_depth = int(spec[0][2])
        if end > hist.anchor:
            last = hist.last_row if hist.last_row is not None else hist.anchor
            k = max(_sessions_after(last, target), 1)  # new sessions; the walk adds our last row to compare
            fwd = self.walk(client, code, True, fmt(target), k + 1)
            fwd_entry = ("adj", fmt(target), k + 1)
            if adds_no_action(hist, fwd):
                spec = spec + (fwd_entry,)
                if self._covers_after(client, code, spec, end, count):
                    return spec
                # still too shallow: fall through to a deeper pair
            else:
                log.info("%s: a corporate action after %s; refetching its adjusted history", code, hist.anchor)
                return self._after_action(client, code, hist, spec, fwd, fwd_entry, target, k)
            depth = pages(max(base_depth + k, count + _sessions_after(end, target)))
            return (("raw", fmt(target), depth), ("adj", fmt(target), depth))
        # Older rows needed: a deeper pair at the newest anchor we already trust.
        anchor = hist.anchor
        need = count + _sessions_after(end, anchor)
        depth = pages(max(need, base_depth + DAILY_PAGE_SIZE))
        return (("raw", fmt(anchor), depth), ("adj", fmt(anchor), depth))

    def _after_action(self, client, code: str, hist: History, spec: tuple, fwd: Walk, fwd_entry: tuple,
                      target: np.datetime64, k: int) -> tuple:
        """A corporate action happened after our anchor: new adjusted reference, raw kept.

        Raw prices never change, so only the adjusted history is fetched again
        (as of ``target``).  The new rows' raw prices come from the forward
        walk when it adds just the newest session (a walk's newest row is raw:
        nothing lies after it), else from a raw walk over the gap.
        """
        fmt = lambda d: str(np.datetime64(d, "D"))  # noqa: E731
        new_rows = fwd.dates[fwd.dates > hist.last_row] if hist.last_row is not None else fwd.dates
        if len(new_rows) == 1 and new_rows[0] == target:
            extension = fwd_entry
        else:
            extension = ("raw", fmt(target), k + 1)
        return self._new_reference(spec, fmt(target), extension)

    @staticmethod
    def _new_reference(spec: tuple, target: str, extension: tuple) -> tuple:
        """A spec with a fresh adjusted reference at ``target`` and ``extension`` appended.

        The new reference is as deep as the old one (so a 600-row history costs
        one page, not two), and the old reference stays as a *prior*: the
        actions older than the new reference's first row are read from it.
        """
        old_ref = spec[1]
        prior = ("prior", old_ref[1], old_ref[2])
        rest = tuple(e for e in spec[2:] if e[0] != "prior")
        priors = tuple(e for e in spec[2:] if e[0] == "prior")
        return (spec[0], ("adj", target, int(old_ref[2]))) + rest + (extension,) + priors + (prior,)

    def extend_with_quote(self, client, code: str, session: pd.Timestamp, quote) -> bool:
        """Extend a cached history by one session from a ka10095 quote; True when done.

        Only for a history whose last row is the session before ``session``.
        A reference price that differs from our last close marks a corporate
        action: the adjusted history is then fetched again (one walk) while the
        raw bar still comes from the quote.
        """
        from ._fetch import offer_quote_bar, quote_walk
        from ._history import quote_adds_no_action

        day = np.datetime64(session.date(), "D")
        prev = np.datetime64(calendar.previous_session(session).date(), "D")
        with self.lock(code):
            hist = self.cached_history(client, code)
            ptr = self.read_pointer(code)
            if hist is None or ptr is None:
                return False
            if hist.anchor >= day:
                return True  # another process did it
            if hist.last_row != prev or hist.anchor != prev:
                return False
            spec = tuple(tuple(s) for s in ptr["spec"])
            key = str(day)
            offer_quote_bar(code, key, quote_walk(code, key, quote))
            entry = ("quote", key, 1)
            if quote_adds_no_action(hist, day, prev, float(quote["base_price"])):
                spec = spec + (entry,)
            else:
                log.info("%s: reference price %s differs from our close %s: corporate action; refetching "
                         "its adjusted history", code, quote["base_price"], hist.adj[-1][3])
                spec = self._new_reference(spec, key, entry)
            new = self.load_history(client, code, spec)
            if new.last_row != day:
                return False
            try:
                entry_id = self._history._get_args_id(code, spec, _memo.FORMAT_VERSION)
            except Exception:
                entry_id = None
            if self.writable:
                self.write_pointer(code, spec, new, entry_id, client)
            return True

    def _covers_after(self, client, code: str, spec: tuple, end: np.datetime64, count: int) -> bool:
        return self.load_history(client, code, spec).covers(end, count)
