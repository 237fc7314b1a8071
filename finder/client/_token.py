"""One Kiwoom token per app key, shared by every process on the machine.

Issuing a token invalidates the previous one for that app key (measured by two
independent projects), so processes that each log in knock each other out.
finder keeps the token in an owner-only file inside the cache folder and takes
a file lock around issuing it: a process re-issues only when the shared token
has expired (or is about to) or has just been rejected, and after taking the
lock it first checks whether another process already replaced it.

``expires_dt`` is ``YYYYMMDDHHMMSS`` in Seoul time with no offset; it is parsed
as KST and compared with :func:`finder.calendar.now`.

When the token file cannot be written or locked (a read-only or full cache
folder), the token is kept in this process only and a warning says so once:
other processes with the same key may then supersede it, which costs one
re-issue each time (the 3 / 8005 rule), never a wrong answer.
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
        self.folder = Path(folder)
        key = hashlib.sha256(f"{base_url}|{app_key}".encode()).hexdigest()[:16]
        self.path = self.folder / f"{key}.json"
        self._lock = FileLock(str(self.folder / f"{key}.lock"))
        self._local = threading.Lock()
        self._token: Token | None = None
        self._alone: MemoryTokenStore | None = None
        try:
            ensure_private_dir(self.folder)
        except OSError as exc:
            self._go_alone(exc)

    def _go_alone(self, exc: OSError, token: Token | None = None) -> None:
        # A read-only or full cache folder must not stop requests: keep the token in this
        # process (a token just issued is kept, so it is not issued twice).
        if self._alone is None:
            log.warning("finder: cannot share the Kiwoom token through %s (%s: %s); keeping it in this process",
                        self.folder, type(exc).__name__, exc.strerror or exc)
            self._alone = MemoryTokenStore()
        if token is not None:
            self._alone._token = token

    def _read(self) -> Token | None:
        try:
            data = json.loads(self.path.read_text())
            return Token(data["token"], _dt.datetime.fromisoformat(data["expires"]))
        except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable or half-written
            return None

    def _write(self, token: Token) -> None:
        write_private_file(self.path, json.dumps({"token": token.value, "expires": token.expires.isoformat()}).encode())

    def _issue_and_write(self, issue: Issuer) -> Token:
        token = issue()
        try:
            self._write(token)
        except OSError as exc:
            self._go_alone(exc, token)
        return token

    def get(self, issue: Issuer) -> Token:
        if self._alone is not None:
            return self._alone.get(issue)
        with self._local:
            if self._token is not None and self._token.fresh():
                return self._token
            shared = self._read()
            if shared is not None and shared.fresh():
                self._token = shared
                return shared
            try:
                with self._lock:
                    shared = self._read()  # another process may have issued while we waited
                    if shared is None or not shared.fresh():
                        shared = self._issue_and_write(issue)
                    self._token = shared
                    return shared
            except OSError as exc:  # the lock file cannot be created or opened
                self._go_alone(exc)
        return self._alone.get(issue)

    def replace(self, rejected: str, issue: Issuer) -> Token:
        """The server refused ``rejected``: adopt a newer shared token, or issue one (once, under the lock)."""
        if self._alone is not None:
            return self._alone.replace(rejected, issue)
        with self._local:
            try:
                with self._lock:
                    shared = self._read()
                    if shared is None or shared.value == rejected or not shared.fresh():
                        shared = self._issue_and_write(issue)
                    self._token = shared
                    return shared
            except OSError as exc:
                self._go_alone(exc)
        return self._alone.replace(rejected, issue)

    def peek(self) -> Token | None:
        if self._alone is not None and self._alone.peek() is not None:
            return self._alone.peek()
        return self._token
