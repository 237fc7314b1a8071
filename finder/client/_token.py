"""One Kiwoom token per (host, app key), shared by every process on the machine.

Issuing a token invalidates the previous one for that app key (measured by two
independent projects), so processes that each log in knock each other out.
The token lives in an owner-only file in the per-user state folder
(``finder.client._state``, not the cache folder), and a file lock is held
around issuing it: a process re-issues only when the shared token has expired
(or is about to) or has just been rejected, and after taking the lock it
first checks whether another process already replaced it.

Lifetimes are **real time**: against Kiwoom (whose clock is the wall clock)
``FINDER_NOW`` moves finder's calendar, never a token's life (a clock
override a day ahead used to re-issue on every request).  Only a server
whose ``expires_dt`` is already past by the wall clock (a simulator frozen in
the past) is measured on finder's clock (:func:`lifetime_clock`).
``expires_dt`` is ``YYYYMMDDHHMMSS`` in Seoul time with no offset; it is
parsed as KST.

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


def lifetime_clock(expires: _dt.datetime, issued_at: float) -> tuple[str, float]:
    """Which clock a token issued at ``issued_at`` lives on, and its lifetime in seconds.

    * ``"wall"``: Kiwoom's clock is the wall clock, so ``expires_dt`` is a
      wall-clock deadline, whatever ``FINDER_NOW`` says (an override days
      ahead must not re-issue on every request).
    * ``"finder"``: ``expires_dt`` is already past by the wall clock but not by
      finder's clock: a simulator whose clock ``FINDER_NOW`` mirrors (frozen
      in the past, moved by tests).  Its lifetime is measured on that clock.
    * ``"assumed"``: no clock explains it; the token is used for
      ``ASSUMED_LIFETIME`` of wall time.  A refusal (3 / 8005) re-issues it
      earlier in every case.
    """
    left = expires.timestamp() - issued_at
    if left > 0:
        return "wall", left
    left = (expires - calendar.now()).total_seconds()
    if left > 0:
        return "finder", left
    return "assumed", ASSUMED_LIFETIME


class Token:
    """A token value, Kiwoom's ``expires_dt``, and the clock its lifetime is measured on."""

    __slots__ = ("value", "expires", "issued", "clock", "lifetime")

    def __init__(self, value: str, expires: _dt.datetime, issued: float | None = None,
                 clock: str | None = None, lifetime: float | None = None) -> None:
        self.value = value
        self.expires = expires
        self.issued = time.time() if issued is None else issued
        if clock is None or lifetime is None:
            clock, lifetime = lifetime_clock(expires, self.issued)
        self.clock, self.lifetime = clock, lifetime

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until expiry on the token's clock (``now``: wall time, for the wall and assumed clocks)."""
        if self.clock == "finder":
            return (self.expires - calendar.now()).total_seconds()
        now = time.time() if now is None else now
        end = self.expires.timestamp() if self.clock == "wall" else self.issued + self.lifetime
        return end - now

    def fresh(self, now: float | None = None) -> bool:
        """Usable now, renewal margin kept: 5 minutes, or a tenth of a short lifetime."""
        return self.seconds_left(now) > min(RENEW_MARGIN, self.lifetime / 10)

    def to_json(self) -> bytes:
        return json.dumps({"token": self.value, "expires": self.expires.isoformat(), "issued": self.issued,
                           "clock": self.clock, "lifetime": self.lifetime}).encode()

    @classmethod
    def from_json(cls, text: str) -> "Token":
        data = json.loads(text)
        if data["clock"] not in ("wall", "finder", "assumed"):
            raise ValueError("unknown clock")
        return cls(str(data["token"]), _dt.datetime.fromisoformat(data["expires"]), float(data["issued"]),
                   data["clock"], float(data["lifetime"]))

    def __repr__(self) -> str:  # never show the token itself
        return f"Token(expires={self.expires.isoformat()}, clock={self.clock})"


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
