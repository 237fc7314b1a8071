"""Where the client keeps the state it shares between processes: the token and the pacing slots.

One folder per (host, app key), under a per-user state folder::

    $FINDER_STATE_DIR (else platformdirs' user state folder, e.g. ~/.local/state/finder)
      <sha256(host | app key)[:16]>/      0700
        token.json   token.lock           the shared token (0600)
        pace-<api-id>.slot / .lock        the next free request slot per api-id

Guarantees:

* The place does not depend on ``FINDER_CACHE_DIR``: every process that uses
  the same app key on the same host shares one token and one pacing, whatever
  cache folder it reads (two cache folders used to mean two tokens that
  knocked each other out, and twice the rate).
* Folders are created owner-only (0700) whatever the umask; the token file is
  written 0600.  A key folder that someone else owns, or that group or others
  can read or write, is not used (:func:`unsafe_reason` says why): the caller
  then keeps its token and pacing in the process, and says so.
* The folder name is a hash: neither the key nor the host can be read from it.

Not guaranteed: sharing between machines or users.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


from .._paths import ensure_private_dir, user_state_dir

__all__ = ["state_root", "key_folder", "unsafe_reason"]

ENV = "FINDER_STATE_DIR"


def state_root() -> Path:
    """The per-user state folder: ``FINDER_STATE_DIR`` if set, else the platform's user state folder."""
    return user_state_dir()


def key_folder(base_url: str, app_key: str, root: Path | None = None) -> Path:
    """The folder for one (host, app key); not created here."""
    digest = hashlib.sha256(f"{base_url.rstrip('/')}|{app_key}".encode()).hexdigest()[:16]
    return (root or state_root()) / digest


def prepare(folder: Path) -> Path:
    """Create ``folder`` owner-only if missing; raise ``OSError`` when it cannot be used safely."""
    ensure_private_dir(folder)
    reason = unsafe_reason(folder)
    if reason:
        raise PermissionError(reason)
    return folder


def unsafe_reason(folder: Path) -> str | None:
    """Why sharing a token through ``folder`` would be unsafe, or None when it is owner-only."""
    if os.name == "nt":  # POSIX modes mean little there; the folder is under the user's profile
        return None
    st = os.stat(folder)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"state folder {folder} belongs to another user (uid {st.st_uid})"
    if stat.S_IMODE(st.st_mode) & 0o077:
        return (f"state folder {folder} is open to group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"a token there could be read or replaced; fix it with `chmod 700 {folder}`")
    return None
