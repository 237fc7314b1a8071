"""Cache faults: a damaged, unreadable, read-only, full, outdated or half-written cache folder.

For each fault the test shows that finder returns correct data (equal to the
simulator's oracle, adjusted values within 1 KRW), warns, and leaves the
cache usable (afterwards a new process is served from it without requests,
or, for a folder that refuses writes, once it takes writes again).

How each fault is made, honestly:

* truncated ``output.pkl``, missing / half-written ``metadata.json``, an
  older cache format: real files edited on disk, read by a fresh Store (as a
  new process would).
* unreadable file: ``chmod 000`` when that stops reads; tests usually run as
  root, where it does not (root bypasses file modes), which is detected by a
  probe.  Then each file is replaced by a symlink to a directory: ``open()``
  fails with an OSError (EISDIR) exactly where EACCES would, while the folder
  stays writable, as it would for a real unreadable file.
* read-only folder: (a) a cache path under a regular file, which the kernel
  refuses to create (ENOTDIR), always available; (b) a warm cache made
  immutable with ``chattr +i`` (the kernel refuses writes even to root), or
  ``chmod`` when not root; skipped with the reason when neither works here.
* full disk: ENOSPC injected in-process on every write under the cache
  folder (new folders, and writes to files opened there), a unit-level fault
  injection; reads keep working, as on a real full disk.
* killed writer: a real subprocess warming the cache is SIGKILLed while it
  is inside a write (it announces it has written half an entry, then the
  parent kills it), and again at arbitrary moments.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from finder import calendar
from finder._exceptions import FinderError
from _reliability import (
    SIM_NOW,
    assert_matches_oracle,
    assert_walks_complete,
    cache_files,
    clean_env,
    forget_stores,
)
from _support import APP_KEY, REPO, SECRET_KEY, client, full_history_codes, ka10081

D = "2025-10-01"
N = 120


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    clean_env(monkeypatch, tmp_path / "cache")
    forget_stores()
    yield
    forget_stores()


@pytest.fixture
def codes(sim_market):
    return full_history_codes(sim_market, "2020-01-01", SIM_NOW[:10], 4)


def warm(sim, root, codes, market) -> dict:
    with client(sim, root) as api:
        out = {c: api.get_ohlcv(c, N, D) for c in codes}
    for c in codes:
        assert_matches_oracle(out[c], market, c, D, N)
    forget_stores()
    return out


def fetch(sim, root, codes, market, **kw) -> tuple[dict, list[str], int]:
    """A new Store (as in a new process): (frames, finder's warnings, ka10081 requests)."""
    forget_stores()
    sim.reset_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with client(sim, root, **kw) as api:
            out = {c: api.get_ohlcv(c, N, D) for c in codes}
    for c in codes:
        assert_matches_oracle(out[c], market, c, D, N)
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    return out, texts, ka10081(sim)


def assert_usable(sim, root, codes, market, walked: list[str] | None = None) -> None:
    """The cache serves everything from disk now, and what it stores is whole.

    ``walked``: the stocks whose walks must be on disk (default: all of them).
    """
    _, texts, n = fetch(sim, root, codes, market)
    assert n == 0, f"{n} requests after the repair"
    assert not texts, texts
    assert assert_walks_complete(root, market) >= 2 * len(codes if walked is None else walked)
    files = cache_files(root)
    assert {p.stem for p in files.pointers} >= set(codes)
    assert {p.stem for p in files.frames if p.is_file() and not p.is_symlink()} >= set(codes)


# -- truncated output.pkl ---------------------------------------------------------------------------
def _code_of(entry: Path) -> str:
    return json.loads((entry / "metadata.json").read_text())["input_args"]["code"].strip("'")


def entries_of(root: Path, codes: list[str]) -> list[Path]:
    """Every joblib entry (walks, histories and whatever else is stored) of these stocks."""
    out = [e for entries in cache_files(root).entries.values() for e in entries if _code_of(e) in codes]
    assert {_code_of(e) for e in out} == set(codes)
    return out


def test_truncated_output_pkl(sim, sim_market, codes, tmp_path):
    root = tmp_path / "cache"
    want = warm(sim, root, codes, sim_market)
    damaged = entries_of(root, codes[:2])
    assert len(damaged) >= 6                   # at least a raw walk, an adjusted walk and a history each
    ready = [p for p in cache_files(root).frames if p.stem in codes[:2]]
    assert len(ready) == 2                     # and each stock's ready frame
    for p in [entry / "output.pkl" for entry in damaged] + ready:
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    got, texts, n = fetch(sim, root, codes, sim_market)
    assert all(got[c].equals(want[c]) for c in codes)
    assert any("damaged" in t for t in texts), texts
    assert 0 < n <= 2 * 2                      # only the two damaged stocks' walks are fetched again
    assert_usable(sim, root, codes, sim_market)


# -- missing or half-written metadata.json -------------------------------------------------------------
@pytest.mark.parametrize("damage", ["missing", "half-written"])
def test_missing_or_half_written_metadata(damage, sim, sim_market, codes, tmp_path):
    """joblib writes output.pkl, then metadata.json: a reader racing a writer sees the first without the second.

    Reading needs only output.pkl, so the reader must serve the cached data
    without a request and without a false alarm.  The one place that needs
    metadata.json, ``cache.clear(code)``, must still remove that stock's data,
    and says it removed entries it could not attribute.
    """
    import finder.cache as fcache

    root = tmp_path / "cache"
    want = warm(sim, root, codes, sim_market)
    metas = sorted(root.joinpath("joblib").rglob("metadata.json"))
    assert metas
    for m in metas:
        if damage == "missing":
            m.unlink()
        else:
            m.write_bytes(m.read_bytes()[: max(1, m.stat().st_size // 2)])
    got, texts, n = fetch(sim, root, codes, sim_market)
    assert n == 0 and not texts, texts
    assert all(got[c].equals(want[c]) for c in codes)
    with pytest.warns(RuntimeWarning, match="metadata.json was missing or damaged"):
        removed = fcache.clear(codes[0], root=root)
    assert removed >= 3                                       # its raw walk, adjusted walk and history at least
    assert codes[0] not in {p.stem for p in cache_files(root).pointers}
    _, _, n = fetch(sim, root, codes, sim_market)              # cleared data is fetched again, correctly
    assert n > 0
    # The other stocks' entries went too (nothing told whose they were); their ready frames,
    # which name their stock, still serve them exactly, without a request.
    assert_usable(sim, root, codes, sim_market, walked=codes[:1])


def test_live_entry_without_metadata_is_refetched_not_trusted(make_sim, sim_market, codes, tmp_path, monkeypatch):
    """A live bar's freshness is in its metadata.json; without it the bar counts as expired."""
    live_now = "2025-11-27T10:30:00+09:00"
    monkeypatch.setenv("FINDER_NOW", live_now)
    s = make_sim(now=live_now)
    root = tmp_path / "cache"
    with client(s, root) as api:
        first = api.get_ohlcv(codes[0], 5)
    live = cache_files(root).of("live")
    assert len(live) == 1
    (live[0] / "metadata.json").unlink()
    forget_stores()
    s.reset_stats()
    with client(s, root) as api:
        again = api.get_ohlcv(codes[0], 5)
    assert ka10081(s) == 1 and again.equals(first)
    assert (cache_files(root).of("live")[0] / "metadata.json").is_file()   # written whole this time


# -- an unreadable file ------------------------------------------------------------------------------
def _chmod_stops_reads(folder: Path) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        probe.read_bytes()
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o600)
        probe.unlink()


def make_unreadable(path: Path, scratch: Path) -> str:
    if _chmod_stops_reads(scratch):
        path.chmod(0)
        return "chmod 000"
    # root: file modes do not stop reads; a symlink to a directory makes open() fail (EISDIR)
    target = scratch / f"not-a-file-{len(list(scratch.iterdir()))}"
    target.mkdir()
    path.unlink()
    path.symlink_to(target, target_is_directory=True)
    return "symlink to a directory"


def test_unreadable_files(sim, sim_market, codes, tmp_path):
    root = tmp_path / "cache"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    want = warm(sim, root, codes, sim_market)
    files = cache_files(root)
    # every entry of the first two stocks (walks, history), and the pointers of the others
    entries = entries_of(root, codes[:2])
    assert len(entries) >= 6
    how = {make_unreadable(e / "output.pkl", scratch) for e in entries}
    how |= {make_unreadable(p, scratch) for p in files.pointers if p.stem in codes[2:]}
    # and every ready frame, so that each stock's next call reads its entries or its pointer
    how |= {make_unreadable(p, scratch) for p in files.frames}
    assert len(how) == 1, how
    got, texts, n = fetch(sim, root, codes, sim_market)
    assert all(got[c].equals(want[c]) for c in codes)
    assert any("damaged" in t for t in texts) and any("unreadable cache index entry" in t for t in texts), texts
    assert n <= 2 * len(codes)
    assert_usable(sim, root, codes, sim_market)


# -- a read-only cache folder --------------------------------------------------------------------------
def _serve_read_only(sim, root, codes, market) -> None:
    """Served uncached (every call asks upstream), correct, with exactly one 'not writable' warning."""
    sim.reset_stats()
    forget_stores()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with client(sim, root) as api:
            for _ in range(2):
                for c in codes:
                    assert_matches_oracle(api.get_ohlcv(c, N, D), market, c, D, N)
            from finder.cache._ohlcv import get_panel

            panel = get_panel(api, codes, N, D, progress=False)
    assert list(panel.columns) == codes and not panel.attrs["missing"]
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert sum("not writable" in t for t in texts) == 1, texts
    assert ka10081(sim) == 3 * len(codes)          # one single-page walk per call: nothing cached


def test_cache_folder_that_cannot_be_created(sim, sim_market, codes, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file: nothing can be created under it (ENOTDIR)")
    root = blocker / "cache"
    _serve_read_only(sim, root, codes, sim_market)
    import finder.cache as fcache

    assert fcache.info(root)["writable"] is False
    assert blocker.read_text().startswith("a regular file")  # untouched


def _freeze(path: Path) -> str | None:
    """Make ``path`` truly read-only for this process; return how, or None when this machine cannot."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        return "chmod -R a-w"
    if shutil.which("chattr"):
        r = subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True, text=True)
        if r.returncode == 0:
            try:
                (path / "probe").write_text("x")
            except OSError:
                return "chattr -R +i"
            _thaw(path)
    return None


def _thaw(path: Path) -> None:
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
    else:
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)


def test_read_only_cache_folder_with_data(sim, sim_market, codes, tmp_path):
    root = tmp_path / "cache"
    warm(sim, root, codes[:2], sim_market)
    before = sorted(str(p) for p in root.rglob("*"))
    how = _freeze(root)
    if how is None:
        pytest.skip("cannot make a folder read-only for root here (no chattr +i on this filesystem); "
                    "test_cache_folder_that_cannot_be_created covers the read-only path")
    try:
        _serve_read_only(sim, root, codes, sim_market)
        assert sorted(str(p) for p in root.rglob("*")) == before     # nothing was written
    finally:
        _thaw(root)
    # writable again: the cache is whole and takes new stocks
    _, _, n = fetch(sim, root, codes[:2], sim_market)
    assert n == 0
    warm(sim, root, codes, sim_market)
    assert_usable(sim, root, codes, sim_market)


# -- a full disk -------------------------------------------------------------------------------------
class _FullFile:
    """A file opened for writing on a full disk: creating it worked, writing to it does not."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), getattr(self._fh, "name", None))

    def writelines(self, lines):
        self.write(b"")

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def disk_full(monkeypatch, root: Path) -> None:
    """From now on every write under ``root`` fails with ENOSPC: new folders and data written to files."""
    from joblib import _store_backends

    root = str(root.resolve())
    under = lambda p: isinstance(p, (str, os.PathLike)) and os.path.abspath(os.fspath(p)).startswith(root)  # noqa: E731
    fds: set[int] = set()
    real_open, real_os_open, real_mkdir = io.open, os.open, os.mkdir

    def os_open(path, flags, *a, **kw):
        fd = real_os_open(path, flags, *a, **kw)
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR):
            fds.add(fd)
        return fd

    def open_(file, mode="r", *a, **kw):
        fh = real_open(file, mode, *a, **kw)
        if any(m in mode for m in "wax+") and (under(file) or (isinstance(file, int) and file in fds)):
            return _FullFile(fh)
        return fh

    def mkdir(path, *a, **kw):
        if under(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        return real_mkdir(path, *a, **kw)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(_store_backends.FileSystemStoreBackend, "_open_item", staticmethod(open_))


def test_full_disk_while_writing(sim, sim_market, codes, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    warm(sim, root, codes[:2], sim_market)
    with monkeypatch.context() as mp:
        disk_full(mp, root)
        _serve_read_only(sim, root, codes, sim_market)
    # space again: what was cached before is intact, nothing half-written is trusted, and new stocks are cached
    _, texts, n = fetch(sim, root, codes[:2], sim_market)
    assert n == 0 and not texts
    assert assert_walks_complete(root, sim_market) == 4
    assert {p.stem for p in cache_files(root).pointers} == set(codes[:2])
    warm(sim, root, codes, sim_market)
    assert_usable(sim, root, codes, sim_market)


def test_disk_filling_up_in_the_middle_of_a_fetch(sim, sim_market, codes, tmp_path, monkeypatch):
    """The disk fills after the walks are stored but before the history and pointer: served right, nothing partial."""
    from finder.cache import _store

    root = tmp_path / "cache"
    real_walk = _store.Store.walk
    calls = {"n": 0}
    with monkeypatch.context() as mp:

        def walk_then_fill(self, *a, **kw):
            value = real_walk(self, *a, **kw)
            calls["n"] += 1
            if calls["n"] == 2:          # raw and adjusted walks stored: now the disk is full
                disk_full(mp, root)
            return value

        mp.setattr(_store.Store, "walk", walk_then_fill)
        with pytest.warns(RuntimeWarning, match="cannot write to the cache folder"):
            with client(sim, root) as api:
                df = api.get_ohlcv(codes[0], N, D)
    assert_matches_oracle(df, sim_market, codes[0], D, N)
    files = cache_files(root)
    assert not files.pointers and not files.of("history")
    assert assert_walks_complete(root, sim_market) == 2
    forget_stores()
    sim.reset_stats()
    with client(sim, root) as api:
        assert api.get_ohlcv(codes[0], N, D).equals(df)
    assert ka10081(sim) == 0                       # the two whole walks were reused
    assert [p.stem for p in cache_files(root).pointers] == [codes[0]]


# -- a cache written by an older format --------------------------------------------------------------------
def test_cache_from_an_older_format(sim, sim_market, codes, tmp_path, monkeypatch):
    from finder.cache import _memo

    root = tmp_path / "cache"
    want = warm(sim, root, codes, sim_market)
    old_entries = {p for e in cache_files(root).entries.values() for p in e}
    monkeypatch.setattr(_memo, "FORMAT_VERSION", _memo.FORMAT_VERSION + 1)   # this finder is a release later
    got, texts, n = fetch(sim, root, codes, sim_market)
    assert all(got[c].equals(want[c]) for c in codes)
    assert sum("another cache format" in t for t in texts) == 1, texts
    assert n == 2 * len(codes)                       # old entries are not read: everything fetched again
    for p in cache_files(root).pointers:
        assert json.loads(p.read_text())["version"] == _memo.FORMAT_VERSION
    new_entries = {p for e in cache_files(root).entries.values() for p in e} - old_entries
    assert len(new_entries) >= 3 * len(codes)
    assert_usable(sim, root, codes, sim_market)


# -- a process killed in the middle of a write -----------------------------------------------------------
_WARMER = """
import os, sys, time
from finder import KiwoomAPI
if os.environ.get("T_PAUSE_MID_WRITE"):
    # Announce being half-way through writing a cache entry, then stay there until killed.
    from joblib import _store_backends
    real_open = _store_backends.FileSystemStoreBackend._open_item
    class Half:
        def __init__(self, fh): self.fh = fh
        def write(self, data):
            data = bytes(data)
            self.fh.write(data[: len(data) // 2]); self.fh.flush(); os.fsync(self.fh.fileno())
            print("HALF-WRITTEN", self.fh.name, flush=True)
            time.sleep(600)
        def __getattr__(self, n): return getattr(self.fh, n)
        def __enter__(self): return self
        def __exit__(self, *e): self.fh.close()
    state = {"n": 0}
    def open_item(f, mode):
        fh = real_open(f, mode)
        if "w" in mode and "output.pkl." in str(f):
            state["n"] += 1
            if state["n"] == int(os.environ["T_PAUSE_MID_WRITE"]):
                return Half(fh)
        return fh
    _store_backends.FileSystemStoreBackend._open_item = staticmethod(open_item)
api = KiwoomAPI(os.environ["T_KEY"], os.environ["T_SECRET"], os.environ["T_URL"], cache_dir=os.environ["T_CACHE"],
                rate=1000)
print("STARTED", flush=True)
for c in os.environ["T_CODES"].split(","):
    api.get_ohlcv(c, int(os.environ["T_COUNT"]), os.environ["T_DATE"])
    print("DONE", c, flush=True)
print("FINISHED", flush=True)
"""


def _spawn_warmer(sim, root, codes, pause_at: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, T_KEY=APP_KEY, T_SECRET=SECRET_KEY, T_URL=sim.url, T_CACHE=str(root),
               T_CODES=",".join(codes), T_COUNT=str(N), T_DATE=D, FINDER_NOW=SIM_NOW)
    if pause_at:
        env["T_PAUSE_MID_WRITE"] = str(pause_at)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(_WARMER)], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, word: str, timeout: float = 60) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=1):
            line = proc.stdout.readline()
            if word in line:
                return line
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"the warmer never said {word!r}: {proc.stderr.read()[-2000:]}")


@pytest.mark.slow
def test_process_killed_in_the_middle_of_a_write(sim, sim_market, tmp_path):
    import finder.cache as fcache

    codes = full_history_codes(sim_market, "2020-01-01", SIM_NOW[:10], 12)
    root = tmp_path / "cache"
    # 1. killed while it is half-way through writing an entry (the 5th output.pkl: the 2nd stock's history)
    proc = _spawn_warmer(sim, root, codes[:4], pause_at=5)
    line = _wait_for(proc, "HALF-WRITTEN")
    half = Path(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert half.is_file() and not (half.parent / "output.pkl").exists()   # the half-written temporary is there
    # 2. killed at arbitrary moments of a warm-up, three times over
    for delay in (0.3, 0.7, 1.1):
        proc = _spawn_warmer(sim, root, codes, pause_at=None)
        _wait_for(proc, "STARTED")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # The next process gets correct data for every stock, and the cache is whole after it.
    fetch(sim, root, codes, sim_market)
    assert_usable(sim, root, codes, sim_market)
    # The leftovers of the killed writers are found and removed by prune, which says so.
    leftovers = cache_files(root).temp
    assert half in leftovers
    for p in leftovers:                                   # abandoned long ago, not a write in progress
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    with pytest.warns(RuntimeWarning, match="interrupted writes"):
        out = fcache.prune(root=root)
    assert out["temporaries"] == len(leftovers)
    assert not cache_files(root).temp
    assert_usable(sim, root, codes, sim_market)
