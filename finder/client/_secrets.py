"""Keeping the app key, the secret key and tokens out of every message.

Each client registers its secrets here.  :func:`redact` replaces any registered
secret inside a text with ``***``; a logging filter applies it to every record
of finder's, httpx's and httpcore's loggers, and the client passes exception
messages through it.  What this does not cover: a secret the caller prints
themselves.
"""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_MIN_LEN = 6  # shorter strings would redact ordinary words


def register(*values: str | None) -> None:
    with _lock:
        for v in values:
            if v and len(v) >= _MIN_LEN:
                _secrets.add(v)
    _install_filter()


def redact(text: str) -> str:
    if not _secrets or not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            try:
                msg = record.getMessage()
            except Exception:  # a malformed record is not ours to fix
                return True
            clean = redact(msg)
            if clean != msg:
                record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()
_LOGGERS = ("finder", "httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2")


def _install_filter() -> None:
    # A logger's filters see only the records logged on that very logger, not those its
    # children pass up ("finder.client" records never met the filter on "finder"), so every
    # logger of these families that exists gets it.  This runs on each register(), i.e. at
    # each client and each token; a finder logger first created later is covered at the next.
    names = set(_LOGGERS)
    names.update(n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in ("finder", "httpx", "httpcore"))
    for name in names:
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
