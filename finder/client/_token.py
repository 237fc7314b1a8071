"""One Kiwoom token per (host, app key), shared by every process on the machine.

Issuing a token invalidates the previous one for that app key (measured by two
independent projects), so processes that each log in knock each other out.
The token lives in an owner-only file in the per-user state folder
(``finder.client._state``, not the cache folder), and a file lock is held
around issuing it: a process re-issues only when the shared token has expired
(or is about to) or has just been rejected, and after taking the lock it
first checks whether another process already replaced it.

Lifetimes are **real time**: ``FINDER_NOW`` moves finder's calendar, never a
token's life (a clock override a day ahead used to re-issue on every
request).  ``expires_dt`` is ``YYYYMMDDHHMMSS`` in Seoul time with no offset;
it is parsed as KST and turned into a wall-clock deadline once, at issue
(:func:`deadline_for`).

When the token file cannot be written or locked (a read-only, full or unsafe
state folder), the token is kept in this process only and a warning says so
once: other processes with the same key may then supersede it, which costs
one re-issue each time (the 3 / 8005 rule), never a wrong answer.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from filelock import FileLock

from .. import calendar
from .._paths import write_private_file
from ._state import prepare

log = logging.getLogger("finder.client")

RENEW_MARGIN = 300.0            # seconds: renew a little before expiry, not after
ASSUMED_LIFETIME = 23 * 3600.0  # when no clock explains expires_dt (see deadline_for); Kiwoom's is ~24 h


def parse_expires_dt(text: str) -> _dt.datetime:
    """``'20251129203000'`` → an aware datetime in KST (never machine-local time)."""
    return _dt.datetime.strptime(text.strip(), "%Y%m%d%H%M%S").replace(tzinfo=calendar.KST)


def deadline_for(expires: _dt.datetime, issued_at: float) -> float:
    """The wall-clock time (epoch seconds) until which a token issued at ``issued_at`` is used.

    Kiwoom's clock is the wall clock, so ``expires_dt`` itself is the deadline.
    A server whose clock is elsewhere (a simulator frozen in the past, whose
    clock ``FINDER_NOW`` mirrors) issues an ``expires_dt`` already past by the
    wall clock: its lifetime is then measured on finder's clock and counted
    from ``issued_at``.  When neither clock explains it, the token is used for
    ``ASSUMED_LIFETIME``; a refusal (3 / 8005) re-issues it earlier anyway.
    """
    if expires.timestamp() > issued_at:
        return expires.timestamp()
    left = (expires - calendar.now()).total_seconds()
    return issued_at + (left if left > 0 else ASSUMED_LIFETIME)


class Token:
    """A token value, Kiwoom's ``expires_dt`` and the wall-clock window it is used in."""

    __slots__ = ("value", "expires", "issued", "deadline")

    def __init__(self, value: str, expires: _dt.datetime, issued: float | None = None,
                 deadline: float | None = None) -> None:
        self.value = value
        self.expires = expires
        self.issued = time.time() if issued is None else issued
        self.deadline = deadline_for(expires, self.issued) if deadline is None else deadline

    def fresh(self, now: float | None = None) -> bool:
        """Usable now (wall clock), renewal margin kept: 5 minutes, or a tenth of a short lifetime."""
        now = time.time() if now is None else now
        margin = min(RENEW_MARGIN, max(0.0, self.deadline - self.issued) / 10)
        return now < self.deadline - margin

    def to_json(self) -> bytes:
        return json.dumps({"token": self.value, "expires": self.expires.isoformat(),
                           "issued": self.issued, "deadline": self.deadline}).encode()

    @classmethod
    def from_json(cls, text: str) -> "Token":
        data = json.loads(text)
        return cls(str(data["token"]), _dt.datetime.fromisoformat(data["expires"]), float(data["issued"]),
                   float(data["deadline"]))

    def __repr__(self) -> str:  # never show the token itself
        return f"Token(expires={self.expires.isoformat()})"


Issuer = Callable[[], Token]


class MemoryTokenStore:
    """A token kept in this process only (the in-process simulator's own tokens, or a fallback)."""

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

    def __repr__(self) -> str:
        return "MemoryTokenStore()"


class FileTokenStore:
    """The shared token file ``<key folder>/token.json`` (0600) plus its lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "token.json"
        self._lock = FileLock(str(self.folder / "token.lock"))
        self._local = threading.Lock()
        self._token: Token | None = None
        self._alone: MemoryTokenStore | None = None
        try:
            prepare(self.folder)
        except OSError as exc:
            self._go_alone(exc)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.folder)!r})"

    def _go_alone(self, exc: OSError, token: Token | None = None) -> None:
        # A read-only, full or unsafe folder must not stop requests: keep the token in this
        # process (a token just issued is kept, so it is not issued twice).
        if self._alone is None:
            log.warning("finder: cannot share the Kiwoom token through %s (%s: %s); keeping it in this process",
                        self.folder, type(exc).__name__, exc.strerror or exc)
            self._alone = MemoryTokenStore()
        if token is not None:
            self._alone._token = token

    def _read(self) -> Token | None:
        try:
            return Token.from_json(self.path.read_text())
        except (OSError, ValueError, KeyError, TypeError):  # missing, unreadable or half-written
            return None

    def _issue_and_write(self, issue: Issuer) -> Token:
        token = issue()
        try:
            write_private_file(self.path, token.to_json())
        except OSError as exc:
            self._go_alone(exc, token)
        return token

    def get(self, issue: Issuer) -> Token:
        if self._alone is not None:
            return self._alone.get(issue)
        with self._local:
            if self._token is not None and self._token.fresh():
                # Another process may have replaced it since; the server's refusal tells us (replace()).
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
