"""Where finder keeps its files, and how it makes that place safe.

The cache folder is, in order of precedence:

1. ``FINDER_CACHE_DIR`` when it is set;
2. the repository's top-level ``cache_dir/`` when finder is imported from a
   checkout (an editable install), so notebooks in ``notebooks/`` and the CLI
   run from the repository root share one cache;
3. a per-user cache folder (``$XDG_CACHE_HOME/finder``, ``~/.cache/finder``,
   ``~/Library/Caches/finder`` or ``%LOCALAPPDATA%\\finder``).

Guarantees: folders finder creates are owner-only (0700) and files that hold
secrets are created 0600.  A cache folder that another user owns, or that
others can write (a group counts unless it is the user's private group, as on
Ubuntu under umask 002), is reported by :func:`unsafe_reason`, because loading a pickle from a folder that
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


def user_state_dir() -> Path:
    """finder's per-user state folder: ``FINDER_STATE_DIR`` if set, else the platform's user state folder
    (e.g. ``~/.local/state/finder``).  Tokens, pacing slots and the KRX session list live here, shared by
    every cache folder of the user."""
    env = os.environ.get("FINDER_STATE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_state_dir("finder", appauthor=False))


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


def _private_group(gid: int, uid: int) -> bool:
    """True when group ``gid`` holds no user but ``uid`` (a user-private group, Ubuntu's default).

    Under umask 002 a fresh clone's ``cache_dir/`` is 0775: group-writable, but
    the group is the user's own, so nobody else can write there.  A group with
    any other member, or that is another user's primary group, is shared.
    """
    try:
        import grp
        import pwd

        me = pwd.getpwuid(uid).pw_name
        if set(grp.getgrgid(gid).gr_mem) - {me}:
            return False
        return not any(p.pw_gid == gid and p.pw_uid != uid for p in pwd.getpwall())
    except (ImportError, KeyError, OSError):
        return False  # cannot tell: treat it as shared


def unsafe_reason(path: Path) -> str | None:
    """Why loading pickles from ``path`` would be unsafe, or None when only this user can write there.

    Unsafe: a folder another user owns (its owner can write there), or one that
    others can write, or a group other than this user's private group.  Anyone
    who can write there can plant a pickle that runs code when finder loads it.
    """
    try:
        st = os.stat(path)
    except OSError:  # missing, or cannot exist (a path under a file): nothing there to load
        return None
    if os.name == "nt" or not hasattr(os, "getuid"):  # POSIX modes mean little there
        return None
    uid = os.getuid()
    fix = (f"Fix it with `chmod go-w {path}` (and own it yourself), or set FINDER_ALLOW_SHARED_CACHE=1 if you "
           "trust every writer")
    if st.st_uid not in (uid, 0):
        return (f"cache folder {path} is owned by another user (uid {st.st_uid}), who can write pickles there "
                f"that run code when finder loads them. {fix}")
    mode = stat.S_IMODE(st.st_mode)
    others = bool(st.st_mode & stat.S_IWOTH)
    group = bool(st.st_mode & stat.S_IWGRP) and not _private_group(st.st_gid, uid)
    if others or group:
        who = "group and others" if others and group else ("others" if others else "group")
        return (f"cache folder {path} is writable by {who} (mode {mode:o}); "
                f"loading pickles from it would run code anyone there planted. {fix}")
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
