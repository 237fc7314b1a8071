"""The cache store: memoized entries, one pointer per stock, single-flight locks, in-memory histories.

Layout under the cache folder::

    joblib/...                 joblib.Memory's own entries (walks, histories, live bars, stock lists)
    finder/index/<code>.json   pointer: which history entry is current for the stock (``_index``)
    finder/frames/<code>.pkl   the stock's ready frame, what a warm get_ohlcv reads (``_frames``)
    finder/panels/<id>/        stored dates × codes panels (``_panel``)
    finder/unknown/<code>.json "no such stock" markers, valid for one session
    finder/locks/<code>.lock   held while one process fetches (or commits) that stock

How a request is served (``ensure``):

1. Read the stock's pointer; if its history covers the request, load it (a
   joblib hit) — no lock, no request.
2. Otherwise take the stock's file lock (single flight: other processes asking
   for the same stock wait here, then find the work done), re-read the
   pointer, and let the pure planner (``_plan.plan``) say which walks the new
   history needs; fetch them (memoized), assemble the history, and commit it
   (``_commit``): fold its raw walk and extensions into one raw walk so the
   spec stays short, write the pointer atomically, then remove the entries it
   superseded.  So a stock refreshed every day for a year holds as many
   entries as a fresh build, not one more per session.

The modules around it: ``_plan`` (decisions, no I/O), ``_index`` (pointers),
``_backend`` (the only place that knows joblib's storage), ``_memo`` (the
memoized function bodies), ``_fetch`` (what a miss runs), ``_history`` (the
adjustment math).

Guarantees: a pointer only ever names a history built from complete walks;
results are identical whichever process fetched them; a reader that loses a
race with a commit (its entry was just removed) re-reads the pointer and sees
a miss, never damage; nothing is unpickled before the folder's safety check.
Not guaranteed: a stock whose walk keeps failing is fetched again on each call
(errors are never cached; a "no such stock" answer is kept as a marker until
the next session).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from .. import calendar
from .._exceptions import CacheError, KiwoomError, StockNotFoundError
from .._paths import ensure_private_dir, state_dir, unsafe_reason
from . import _backend, _fetch, _frames, _memo
from ._history import History, Walk
from ._index import PointerIndex
from ._plan import Fetch, Spec, WalkRef, compacted, key, pages, plan, spec_of  # noqa: F401 (pages: re-export)

log = logging.getLogger("finder.cache")

# The markets whose day's lists decide whether a code with no bars is unknown (see Store._listed_today).
_LISTED_MARKETS = ("KOSPI", "KOSDAQ", "ETF")

# joblib's id of the memoized frame function that ready frames replaced; pointers of older
# versions still name such entries, and their next commit removes them.
_LEGACY_FRAME_FUNC = "finder/cache/_memo/frame"

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


def _seen_recently(value) -> bool:
    """A live entry seen within the TTL of finder's "now" (entries without the mark: by the wall clock only)."""
    asof = value.get("asof") if isinstance(value, dict) else None
    if asof is None:
        return True
    return abs(calendar.now().timestamp() - float(asof)) < live_ttl()


def _sessions_after(start: np.datetime64, end: np.datetime64) -> int:
    """Sessions in ``(start, end]``: how many rows lie after ``start`` up to ``end``."""
    return max(calendar.sessions_between_count(pd.Timestamp(start), pd.Timestamp(end)) - 1, 0)


def _copy_on_write() -> bool:
    """Whether pandas copies on write (always from pandas 3; an option in 2.x)."""
    if _PANDAS_MAJOR >= 3:
        return True
    return pd.options.mode.copy_on_write is True


_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def _same_history(a: History, b: History) -> bool:
    return (a.anchor == b.anchor and a.reached_start == b.reached_start and np.array_equal(a.dates, b.dates)
            and np.array_equal(a.raw, b.raw) and np.array_equal(a.adj, b.adj)
            and np.array_equal(a.raw_volume, b.raw_volume) and np.array_equal(a.adj_volume, b.adj_volume)
            and np.array_equal(a.value, b.value) and np.array_equal(a.events.ex, b.events.ex)
            and np.allclose(a.events.price, b.events.price, rtol=0, atol=1e-12))


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
        self.root = Path(root)
        try:
            ensure_private_dir(self.root)
        except OSError:
            pass  # cannot even be created (under a file, a read-only parent): the probe below says so
        self.state = state_dir(self.root)
        self.unsafe = unsafe_reason(self.root)
        if self.unsafe:
            log.warning("finder: %s", self.unsafe)
        self._warned: set[str] = set()
        self.index = PointerIndex(self.state, _memo.FORMAT_VERSION, self.warn_once)
        self.writable = self._probe_writable()
        if self.writable:
            calendar.save_sessions()  # spares the next process the XKRX build
        self.stats = Stats()
        self._lru: OrderedDict = OrderedDict()
        self._lru_lock = threading.Lock()
        # Ready-frame bytes per stock, for get_ohlcv hits (``_frames``; bytes, so each hit
        # unpickles its own frame and nothing handed out aliases what is kept).
        self._frames: OrderedDict = OrderedDict()
        self._frame_anchors: dict[str, np.datetime64] = {}  # anchor of the ready frame last read per stock
        # The newest history loaded per stock (weak: the LRU above decides what stays in memory).
        self._latest: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        try:
            memory = _backend.memory(str(self.root))
        except OSError:
            # The folder cannot be created: nothing is stored or loaded, every call is served uncached.
            memory = _backend.memory(None)
        self.memory = memory
        self._walk = memory.cache(_memo.walk, ignore=["client"])
        self._history = memory.cache(_memo.history, ignore=["client"])
        self._live = memory.cache(_memo.live, ignore=["client"], cache_validation_callback=_live_is_fresh)
        self._stock_list = memory.cache(_memo.stock_list, ignore=["client"])
        self._quote_bar = memory.cache(_memo.quote_bar, ignore=["client"])

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

        A failed store happens for a full or read-only disk, but also when
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
        """Refuse to load pickles from a folder others can write, unless explicitly allowed.

        Called before every load from disk (``_call``, ``_load_bytes``), so no entry point can
        unpickle first and check later.
        """
        if self.unsafe and os.environ.get("FINDER_ALLOW_SHARED_CACHE") != "1":
            raise CacheError(f"refusing to load the cache: {self.unsafe}")

    # -- pointers -----------------------------------------------------------------
    def read_pointer(self, code: str) -> dict | None:
        return self.index.read(code)

    def write_pointer(self, code: str, spec: Spec, history: History, entry: str | None) -> None:
        """Write the stock's ready frame (``_frames``), then its pointer."""
        try:
            _frames.write(self.state, code, history)
        except OSError as exc:  # only a speed-up: without it hits take the history path
            self.cannot_write(f"the ready frame of {code}", exc)  # an older one stays right for what it serves
        self.index.write(code, spec, history, entry)
        with self._lru_lock:
            self._frames.pop(code, None)  # the next hit reads the new file
            self._frame_anchors.pop(code, None)

    def lock(self, code: str) -> FileLock:
        folder = ensure_private_dir(self.state / "locks")
        return FileLock(str(folder / f"{code}.lock"))

    # -- memoized calls ---------------------------------------------------------
    def _call(self, func, *args, client=None):
        """Call a memoized function; return (value, was_computed).  Fails loudly on disk trouble.

        Storage trouble is read from ``_backend.outcome`` (per thread), never
        from the process's warning filters.
        """
        self.check_safe()
        out = _backend.outcome
        saved = (out.store_error, out.load_error)  # an enclosing call's own outcome, restored below
        out.reset()
        _fetch.computed.flag = False
        try:
            value = func(*args, client=client)
            store_error, load_error = out.store_error, out.load_error
        finally:
            out.store_error, out.load_error = saved
        computed = bool(getattr(_fetch.computed, "flag", False))
        if store_error:
            self.cannot_write("an entry", store_error)
        if load_error:
            self.warn_once("load", f"a damaged cache entry was refetched ({load_error.splitlines()[0][:160]})")
            if store_error and self.writable:
                # The damaged entry could not be replaced in place (e.g. a directory where output.pkl
                # should be): remove it, so the next call stores a good one instead of failing again.
                _backend.clear(self.memory, _backend.entry_id(func, *args))
        return value, computed

    def walk(self, client, code: str, adjusted: bool, base_dt: str, depth: int) -> Walk:
        value, _ = self._call(self._walk, code, base_dt, int(depth), bool(adjusted), _memo.FORMAT_VERSION, client=client)
        if not isinstance(value, Walk):
            raise CacheError(f"cache entry for {code} is not a walk")
        return value

    def _load_bytes(self, call_id: tuple) -> bytes:
        self.check_safe()
        blob = _backend.read_bytes_result(self.memory, call_id)
        if not isinstance(blob, bytes):
            raise TypeError(f"unexpected {type(blob).__name__}")
        return blob

    def frame_fast(self, code: str, end: np.datetime64, count: int) -> pd.DataFrame | None:
        """The hot path of an adjusted get_ohlcv hit: the last ``count`` rows on or before ``end`` of the
        stock's ready frame (``_frames``), or None when it cannot serve them.

        Usable when ``end`` is on or before the ready frame's anchor and none of
        its corporate actions lies after ``end`` (then Kiwoom's numbers as of the
        anchor are the numbers as of ``end``).  Every hit unpickles its own
        frame from bytes, so nothing handed out shares memory with what the
        process keeps, whatever pandas' copy-on-write mode.
        """
        self.check_safe()
        blob = self._frames.get(code)
        if blob is None:
            try:
                blob = _frames.read(self.state, code)
            except OSError as exc:  # unreadable: the full path serves it and writes a new one
                self.warn_once(f"frame:{code}", f"unreadable ready frame of {code} ({type(exc).__name__}); "
                                                "rebuilding it")
                _frames.remove(self.state, code)
                return None
            if blob is None:
                return None
            fresh = True
        else:
            fresh = False
        try:
            anchor, events, reached_start, full = _frames.loads(code, blob)
        except _frames.OtherFormat:  # a quiet miss: the full path (and its pointer) take over, and rewrite it
            with self._lru_lock:
                self._frames.pop(code, None)
            _frames.remove(self.state, code)
            return None
        except Exception as exc:  # damaged: the full path serves and rewrites it
            self.warn_once(f"frame:{code}", f"damaged ready frame of {code} ({type(exc).__name__}); rebuilding it")
            with self._lru_lock:
                self._frames.pop(code, None)
            _frames.remove(self.state, code)
            return None
        with self._lru_lock:
            if fresh:
                self._frames[code] = blob
                if len(self._frames) > _LRU_SIZE:
                    self._frames.popitem(last=False)
            elif code in self._frames:
                self._frames.move_to_end(code)  # least recently used goes first
        self._frame_anchors[code] = anchor
        if end > anchor or any(end < e <= anchor for e in events):
            return None
        n = len(full)
        hi = n if end == anchor else int(full.index.searchsorted(pd.Timestamp(str(end)), side="right"))
        if hi == 0 or (hi < count and not reached_start):
            return None  # nothing on or before end (the full path says so), or too few rows here
        self.stats.add(True)
        lo = max(0, hi - count)
        if lo == 0 and hi == n:
            return full  # unpickled for this call alone
        part = full.iloc[lo:hi]
        # Under copy-on-write a slice is safe to hand out; without it, a write into the slice would
        # warn about (or reach) a parent frame, so it gets its own memory.
        return part if _copy_on_write() else part.copy()

    def repair_frame(self, code: str, history: History) -> None:
        """Write the stock's ready frame when it has none (a cache of an older version, a damaged file) or
        an older one than ``history`` (its commit could not write it)."""
        if not self.writable:
            return
        # (frame_fast removes a damaged one or one of another format, and notes the anchor of the
        # ones it read, so "there and not older" means usable)
        seen = self._frame_anchors.get(code)
        there = os.path.exists(_frames.path(self.state, code))
        if there and (seen is None or seen >= history.anchor):
            return
        with self._single_flight(code):  # commits write frames under this lock too
            ptr = self.read_pointer(code)
            if ptr is None or np.datetime64(ptr["anchor"], "D") != history.anchor:
                return  # not the pointer's history (another process moved on): its next hit repairs it
            try:  # the pointer's own history: what its commit wrote, or would have
                _frames.write(self.state, code, history)
            except OSError as exc:
                self.cannot_write(f"the ready frame of {code}", exc)
                return
        self._frame_anchors.pop(code, None)

    def forget(self, code: str | None = None) -> None:
        """Drop in-memory histories (all, or one stock's), e.g. after clearing or pruning."""
        with self._lru_lock:
            if code is None:
                self._lru.clear()
                self._latest.clear()
                self._frames.clear()
                self._frame_anchors.clear()
            else:
                for k in [k for k in self._lru if k[0] == code]:
                    del self._lru[k]
                self._latest.pop(code, None)
                self._frames.pop(code, None)
                self._frame_anchors.pop(code, None)

    def quote_bar(self, client, code: str, session: str) -> Walk:
        value, _ = self._call(self._quote_bar, code, session, _memo.FORMAT_VERSION, client=client)
        if not isinstance(value, Walk):
            raise CacheError(f"cache entry for {code} is not a quote bar")
        return value

    def _remember(self, code: str, spec: Spec, hist: History) -> None:
        with self._lru_lock:
            self._lru[(code, key(spec))] = hist
            self._latest[code] = hist
            if len(self._lru) > _LRU_SIZE:
                self._lru.popitem(last=False)

    def load_history(self, client, code: str, spec: Spec, entry: str | None = None,
                     rebuild: bool = True) -> History | None:
        """The history of ``spec``: from memory, from its entry (``entry``: joblib's id, a hash-free load),
        or (``rebuild``) through the memoized call, which rebuilds it from its walks.

        With ``rebuild=False`` a missing entry returns None (the caller re-reads the pointer).
        """
        self.check_safe()
        k = (code, key(spec))
        with self._lru_lock:
            hist = self._lru.get(k)
            if hist is not None:
                self._lru.move_to_end(k)
                return hist
        blob = None
        if entry:
            call_id = (self._history.func_id, entry)
            try:
                blob = self._load_bytes(call_id)
            except KeyError:
                # pruned, cleared or superseded by another process's commit: a miss, not damage
                if not rebuild:
                    return None
            except CacheError:
                raise
            except Exception as exc:
                self.warn_once(f"damaged:{code}", f"damaged cache entry for {code} ({type(exc).__name__}); "
                                                  "refetching it")
                _backend.clear(self.memory, call_id)
        if blob is None:
            blob, _ = self._call(self._history, code, key(spec), _memo.FORMAT_VERSION, client=client)
        try:
            hist = History.from_bytes(blob)
        except Exception:
            # A blob that unpickles to garbage: drop the entry and rebuild it once.
            self.warn_once("blob", f"damaged history entry for {code}; rebuilding it")
            blob, _ = self._history.call(code, key(spec), _memo.FORMAT_VERSION, client=client)
            hist = History.from_bytes(blob)
        self._remember(code, spec, hist)
        return hist

    def live(self, client, code: str, session: pd.Timestamp) -> dict:
        day = session.strftime("%Y-%m-%d")
        value, _ = self._call(self._live, code, day, _memo.FORMAT_VERSION, client=client)
        if not _seen_recently(value):
            # Fresh by the wall clock, but finder's "now" (FINDER_NOW) has moved past its TTL:
            # freshness follows FINDER_NOW like every other calendar decision.
            self.check_safe()
            value, _ = self._live.call(code, day, _memo.FORMAT_VERSION, client=client)
        return value

    def live_is_fresh(self, code: str, session: pd.Timestamp) -> bool:
        """True when the stored live bar of ``code`` for ``session`` is within its TTL, by the wall clock
        (the entry's metadata) and by finder's "now"."""
        day = session.strftime("%Y-%m-%d")
        if not self._live.check_call_in_cache(code, day, _memo.FORMAT_VERSION):
            return False
        call_id = _backend.entry_id(self._live, code, day, _memo.FORMAT_VERSION)
        if not _live_is_fresh(_backend.metadata(self.memory, call_id)):
            return False
        try:
            self.check_safe()
            return _seen_recently(self.memory.store_backend.load_item(list(call_id), verbose=0))
        except CacheError:
            raise
        except Exception:
            return False

    def stock_list(self, client, market: str) -> pd.DataFrame:
        self.check_safe()
        day = calendar.today().strftime("%Y-%m-%d")
        if not self.writable:
            return client.get_stock_list(market)
        value, _ = self._call(self._stock_list, market, day, _memo.FORMAT_VERSION, client=client)
        return value.copy()

    # -- histories ----------------------------------------------------------------
    def cached_history(self, client, code: str, pointer: dict | None = None) -> History | None:
        """The stock's current history, or None when nothing usable is cached."""
        self.check_safe()
        ptr = pointer if pointer is not None else self.read_pointer(code)
        for _attempt in range(2):
            if ptr is None:
                return None
            try:
                hist = self.load_history(client, code, spec_of(ptr["spec"]), ptr.get("entry"), rebuild=False)
                if hist is not None:
                    return hist
                # The entry went away: re-read the pointer (another process may have committed a newer one).
                newer = self.read_pointer(code)
                if newer is not None and newer.get("entry") != ptr.get("entry"):
                    ptr = newer
                    continue
                return self.load_history(client, code, spec_of(ptr["spec"]))
            except KiwoomError as exc:
                # The history had to be rebuilt from its parts and one of them cannot be had any
                # more (e.g. a pruned quote bar of a past day): start this stock afresh.
                log.warning("%s: cached history could not be rebuilt (%s); fetching it afresh", code, exc)
                return None
            except (KeyError, ValueError, TypeError) as exc:  # a pointer of the right version but wrong shape
                self.warn_once(f"pointer:{code}", f"unusable cache index entry for {code} ({exc!r}); rebuilding it")
                return None
        return None

    def ensure(self, client, code: str, end: np.datetime64, count: int, pointer: dict | None = None) -> History:
        """A history covering the last ``count`` bars on or before the final session ``end``.

        ``pointer``: the stock's pointer when the caller just read it (saves a read).
        Raises ``StockNotFoundError`` for a code the server called unknown this session.
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
        newest = np.datetime64(calendar.latest_final_session().date(), "D")
        if hist is None:
            known = self.index.unknown(code, str(newest))
            if known is not None:
                self.stats.add(True)
                raise StockNotFoundError(known)
        self.stats.add(False)
        with self._single_flight(code):
            ptr = self.read_pointer(code)
            hist = self.cached_history(client, code, ptr)  # another process may have done the work
            if hist is not None and hist.covers(end, count):
                return hist
            spec = spec_of(ptr["spec"]) if (ptr and hist is not None) else None
            fetched: list[WalkRef] = []
            try:
                step = plan(hist, spec, end, count, newest, _sessions_after)
                while isinstance(step, Fetch):
                    ref = step.ref
                    fwd = self.walk(client, code, ref.kind != "raw", ref.base_dt, ref.depth)
                    fetched.append(ref)
                    step = plan(hist, spec, end, count, newest, _sessions_after, forward=fwd)
                if step.action:
                    log.info("%s: a corporate action after %s; refetching its adjusted history", code,
                             hist.anchor if hist is not None else "?")
                return self._commit(client, code, ptr if hist is not None else None, step.spec, fetched,
                                    end=end, count=count)
            except StockNotFoundError as exc:
                if hist is None and self.writable and not self._listed_today(client, code):
                    try:  # remembered until the next session, as a marker (never as an empty frame)
                        self.index.mark_unknown(code, str(newest), str(exc))
                    except OSError:
                        pass
                raise

    def _listed_today(self, client, code: str) -> bool:
        """Whether today's stock lists name ``code`` (or cannot be read).

        A chart answer of "no bars" is how Kiwoom says "no such stock", but a
        glitch can give the same answer for a listed stock.  Only a code that
        the day's lists (cached for the day, shared by every process) do not
        name is remembered as unknown, so a glitch never hides a real stock.
        The lists read are KOSPI, KOSDAQ and ETF, the markets finder serves
        names for; a stock of another market is never remembered as unknown.
        """
        for market in _LISTED_MARKETS:
            try:
                if code in set(self.stock_list(client, market)["code"]):
                    return True
            except (KiwoomError, CacheError):
                return True  # cannot tell: do not remember anything
        return False

    def _commit(self, client, code: str, old_ptr: dict | None, spec: Spec, fetched=(), end=None,
                count: int = 0) -> History:
        """Build the history of ``spec``, fold it to a short spec, point at it, and drop what it superseded.

        Runs under the stock's lock.  The pointer is written before anything is
        removed, so a reader sees the old history or the new one; one holding
        the old pointer whose entry is gone re-reads the pointer (a miss).
        """
        final = spec
        hist = None
        if self.writable and len(spec) > 2 and any(r.kind not in ("prior",) for r in spec[2:]):
            # Build it in memory (no entry for a spec about to be replaced), then fold it.
            built = History.from_bytes(_fetch.history_blob(client, code, key(spec)))
            folded = compacted(spec, built.anchor, len(built.dates))
            if folded != spec:
                raw = folded[0]
                snapshot = Walk(code, built.anchor, False, built.dates, built.raw, built.raw_volume, built.value,
                                built.reached_start)
                _fetch.offer_walk(code, raw.base_dt, raw.depth, False, snapshot)
                try:
                    self.walk(client, code, False, raw.base_dt, raw.depth)
                finally:
                    _fetch.take_back_walk(code, raw.base_dt, raw.depth, False)
                hist = self.load_history(client, code, folded)
                if _same_history(hist, built):
                    final = folded
                else:  # never expected; keep the long spec rather than serve anything different
                    log.warning("%s: a folded history differed from the original; keeping the long form", code)
                    hist = None
        if hist is None or final is spec:
            hist = self.load_history(client, code, spec)
        if end is not None and not hist.covers(end, count):
            # Can only happen if upstream shrank; never loop on it.
            log.warning("%s: history after refresh still lacks bars up to %s", code, end)
        try:  # joblib's own argument hash; without it reads take the slower full path
            entry = self._history._get_args_id(code, key(final), _memo.FORMAT_VERSION)
        except Exception:
            entry = None
        if not self.writable:
            return hist
        try:
            self.write_pointer(code, final, hist, entry)
        except OSError as exc:  # full or read-only disk, or a damaged index: the data is still right
            self.cannot_write(f"the index entry of {code}", exc)
            return hist
        self.index.forget_unknown(code)
        self._drop_superseded(code, old_ptr, spec, fetched, final, entry)
        return hist

    def _walk_id(self, code: str, ref: WalkRef) -> tuple[str, str]:
        if ref.kind == "quote":
            return _backend.entry_id(self._quote_bar, code, ref.base_dt, _memo.FORMAT_VERSION)
        return _backend.entry_id(self._walk, code, ref.base_dt, int(ref.depth), ref.kind != "raw",
                                 _memo.FORMAT_VERSION)

    def _drop_superseded(self, code: str, old_ptr: dict | None, spec: Spec, fetched, final: Spec,
                         entry: str | None) -> None:
        """Remove the entries no current pointer needs: old walks, the old history (and a legacy frame entry)."""
        old_refs = set(spec) | set(fetched)
        if old_ptr is not None:
            try:
                old_refs |= set(spec_of(old_ptr["spec"]))
            except (KeyError, ValueError, TypeError):
                pass
        # A walk counts by its entry: an adjusted reference and a prior of the same walk share one.
        keep = {self._walk_id(code, r) for r in final}
        for ref in old_refs:
            call_id = self._walk_id(code, ref)
            if call_id not in keep:
                _backend.clear(self.memory, call_id)
        if old_ptr is not None:
            if old_ptr.get("entry") and old_ptr.get("entry") != entry:
                _backend.clear(self.memory, (self._history.func_id, old_ptr["entry"]))
            if old_ptr.get("frame"):  # written by finder before ready frames (``_frames``) replaced them
                _backend.clear(self.memory, (_LEGACY_FRAME_FUNC, old_ptr["frame"]))

    @contextlib.contextmanager
    def _single_flight(self, code: str):
        """The stock's file lock; without it (a lock file that cannot be created) the work is done unlocked.

        The lock only saves duplicate fetches and orders commits: entries and
        pointers are written atomically, so working without it is slower but
        never wrong.
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

    def extend_with_quote(self, client, code: str, session: pd.Timestamp, quote) -> bool:
        """Extend a cached history by one session from a ka10095 quote; True when done.

        Only for a history whose last row is the session before ``session``.
        A reference price that differs from our last close marks a corporate
        action: the adjusted history is then fetched again (one walk) while the
        raw bar still comes from the quote.
        """
        from ._fetch import offer_quote_bar, quote_walk
        from ._history import quote_adds_no_action
        from ._plan import new_reference

        day = np.datetime64(session.date(), "D")
        prev = np.datetime64(calendar.previous_session(session).date(), "D")
        with self._single_flight(code):
            ptr = self.read_pointer(code)
            hist = self.cached_history(client, code, ptr)
            if hist is None or ptr is None:
                return False
            if hist.anchor >= day:
                return True  # another process did it
            if hist.last_row != prev or hist.anchor != prev:
                return False
            spec = spec_of(ptr["spec"])
            k = str(day)
            offer_quote_bar(code, k, quote_walk(code, k, quote))
            ref = WalkRef("quote", k, 1)
            if quote_adds_no_action(hist, day, prev, float(quote["base_price"])):
                spec = spec + (ref,)
            else:
                log.info("%s: reference price %s differs from our close %s: corporate action; refetching "
                         "its adjusted history", code, quote["base_price"], hist.adj[-1][3])
                spec = new_reference(spec, k, ref)
            new = self._commit(client, code, ptr, spec)
            return new.last_row == day
