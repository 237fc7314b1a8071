"""One Kiwoom token per app key, shared by every process on the machine.

Issuing a token invalidates the previous one for that app key (measured by two
independent projects), so processes that each log in knock each other out.
finder keeps the token in an owner-only file inside the cache folder and takes
a file lock around issuing it: a process re-issues only when the shared token
has expired (or is about to) or has just been rejected, and after taking the
lock it first checks whether another process already replaced it.

``expires_dt`` is ``YYYYMMDDHHMMSS`` in Seoul time with no offset; it is parsed
as KST and compared with :func:`finder.calendar.now`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Callable

from filelock import FileLock

from .. import calendar
from .._paths import ensure_private_dir, write_private_file

log = logging.getLogger("finder.client")

RENEW_MARGIN = _dt.timedelta(minutes=5)  # renew a little before expiry, not after


def parse_expires_dt(text: str) -> _dt.datetime:
    """``'20251129203000'`` → an aware datetime in KST (never machine-local time)."""
    return _dt.datetime.strptime(text.strip(), "%Y%m%d%H%M%S").replace(tzinfo=calendar.KST)


class Token:
    __slots__ = ("value", "expires")

    def __init__(self, value: str, expires: _dt.datetime) -> None:
        self.value = value
        self.expires = expires

    def fresh(self) -> bool:
        return calendar.now() < self.expires - RENEW_MARGIN

    def __repr__(self) -> str:  # never show the token itself
        return f"Token(expires={self.expires.isoformat()})"


Issuer = Callable[[], Token]


class MemoryTokenStore:
    """A token kept in this process only (the in-process simulator's own tokens)."""

    def __init__(self) -> None:
        self._token: Token | None = None
        self._lock = threading.Lock()

    def get(self, issue: Issuer) -> Token:
        with self._lock:
            if self._token is None or not self._token.fresh():
                self._token = issue()
            return self._token

    def replace(self, rejected: str, issue: Issuer) -> Token:
        with self._lock:
            if self._token is None or self._token.value == rejected:
                self._token = issue()
            return self._token

    def peek(self) -> Token | None:
        return self._token


class FileTokenStore:
    """The shared token file ``<state>/tokens/<hash>.json`` (0600) plus its lock."""

    def __init__(self, folder: Path, base_url: str, app_key: str) -> None:
        self.folder = ensure_private_dir(Path(folder))
        key = hashlib.sha256(f"{base_url}|{app_key}".encode()).hexdigest()[:16]
        self.path = self.folder / f"{key}.json"
        self._lock = FileLock(str(self.folder / f"{key}.lock"))
        self._local = threading.Lock()
        self._token: Token | None = None

    def _read(self) -> Token | None:
        try:
            data = json.loads(self.path.read_text())
            return Token(data["token"], _dt.datetime.fromisoformat(data["expires"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _write(self, token: Token) -> None:
        write_private_file(self.path, json.dumps({"token": token.value, "expires": token.expires.isoformat()}).encode())

    def get(self, issue: Issuer) -> Token:
        with self._local:
            if self._token is not None and self._token.fresh():
                return self._token
            shared = self._read()
            if shared is not None and shared.fresh():
                self._token = shared
                return shared
            with self._lock:
                shared = self._read()  # another process may have issued while we waited
                if shared is None or not shared.fresh():
                    shared = issue()
                    self._write(shared)
                self._token = shared
                return shared

    def replace(self, rejected: str, issue: Issuer) -> Token:
        """The server refused ``rejected``: adopt a newer shared token, or issue one (once, under the lock)."""
        with self._local, self._lock:
            shared = self._read()
            if shared is None or shared.value == rejected or not shared.fresh():
                shared = issue()
                self._write(shared)
            self._token = shared
            return shared

    def peek(self) -> Token | None:
        return self._token
