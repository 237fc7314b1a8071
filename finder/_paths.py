"""Where finder keeps its files, and how it makes that place safe.

The cache folder is, in order of precedence:

1. ``FINDER_CACHE_DIR`` when it is set;
2. the repository's top-level ``cache_dir/`` when finder is imported from a
   checkout (an editable install), so notebooks in ``notebooks/`` and the CLI
   run from the repository root share one cache;
3. a per-user cache folder (``$XDG_CACHE_HOME/finder``, ``~/.cache/finder``,
   ``~/Library/Caches/finder`` or ``%LOCALAPPDATA%\\finder``).

Guarantees: folders finder creates are owner-only (0700) and files that hold
secrets are created 0600.  A cache folder that group or others can write is
reported by :func:`unsafe_reason`, because loading a pickle from a folder that
others can write is running their code; the cache refuses to load from it
unless ``FINDER_ALLOW_SHARED_CACHE=1``.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "ensure_private_dir", "unsafe_reason", "write_private_file", "state_dir"]

_PACKAGE_ROOT = Path(__file__).resolve().parent


def _checkout_cache_dir() -> Path | None:
    repo = _PACKAGE_ROOT.parent
    if (repo / "pyproject.toml").is_file() and (repo / "cache_dir").is_dir():
        return repo / "cache_dir"
    return None


def _user_cache_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "finder"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "finder"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "finder"


def cache_dir() -> Path:
    """The cache folder finder uses now (see the module docstring for the order)."""
    env = os.environ.get("FINDER_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return _checkout_cache_dir() or _user_cache_dir()


def state_dir(root: Path | None = None) -> Path:
    """finder's own small state (locks, token, rate-limit slots, stock pointers) inside the cache folder."""
    return (root or cache_dir()) / "finder"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) owner-only if missing; return it."""
    path = Path(path)
    if not path.exists():
        old = os.umask(0o077)
        try:
            path.mkdir(parents=True, exist_ok=True)
        finally:
            os.umask(old)
    return path


def unsafe_reason(path: Path) -> str | None:
    """Why loading pickles from ``path`` would be unsafe, or None when it is owner-only enough.

    A folder writable by group or others is unsafe: anyone who can write
    there can plant a pickle that runs code when finder loads it.
    """
    try:
        st = os.stat(path)
    except OSError:  # missing, or cannot exist (a path under a file): nothing there to load
        return None
    if os.name == "nt":  # POSIX modes mean little there
        return None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IWGRP else (
            "others" if st.st_mode & stat.S_IWOTH else "group")
        return (f"cache folder {path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):o}); "
                "loading pickles from it would run code anyone there planted. "
                f"Fix it with `chmod go-w {path}`, or set FINDER_ALLOW_SHARED_CACHE=1 if you trust every writer")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return None  # a folder someone else owns but only they can write: their choice, not a hole
    return None


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, owner-only (0600)."""
    path = Path(path)
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
