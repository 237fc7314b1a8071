"""Decoding one answer: HTTP status and ``return_code`` to a :class:`Reply` or a typed error, by a table.

Guarantees: a ``Reply`` only for HTTP 200 with ``return_code`` 0; every other
answer is either :class:`Transient` (worth retrying: 429, 5xx, non-JSON or
non-object bodies, ``return_code`` 5 without a do-not-retry detail) or the
``finder.APIError`` subclass its row of :data:`RULES` names.  Kiwoom's Korean
text is never parsed beyond the ``[NNNN:`` detail code, and every message is
redacted of secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from .._exceptions import (
    APIError,
    AuthenticationError,
    InvalidRequestError,
    RateLimitError,
    StockNotFoundError,
)
from .._models import (
    DETAIL_BATCH_TOO_LARGE,
    DETAIL_NO_RETRY,
    DETAIL_NO_STOCK,
    DETAIL_TOKEN_INVALID,
    DETAIL_WRONG_ENV,
    RC_AUTH,
    RC_INPUT,
    RC_LIMIT,
    RC_PROCESSING,
    detail_code,
)
from . import _secrets
from ._parse import number
from ._reply import Reply


class Transient(Exception):
    """A failure worth retrying (internal to the client)."""

    def __init__(self, reason: str, rate_limited: bool = False) -> None:
        super().__init__(reason)
        self.rate_limited = rate_limited


RETRY = None  # a rule's ``error`` when the answer is to be retried, not raised


@dataclass(frozen=True)
class Rule:
    """``return_code`` and/or detail (None matches any) → the error to raise (``RETRY``: back off and retry)."""

    return_code: int | None
    detail: str | None
    error: type[APIError] | None
    hint: str = ""

    def matches(self, rc: int, detail: str | None) -> bool:
        return (self.return_code is None or self.return_code == rc) and (self.detail is None or self.detail == detail)


# First match wins; a non-zero code that no row names is a plain APIError.
RULES: tuple[Rule, ...] = (
    Rule(RC_AUTH, None, AuthenticationError),
    Rule(None, DETAIL_TOKEN_INVALID, AuthenticationError),
    Rule(None, DETAIL_WRONG_ENV, AuthenticationError,
         " — this app key belongs to the other host (production vs mock); check KIWOOM_ENV / base_url"),
    Rule(RC_LIMIT, DETAIL_BATCH_TOO_LARGE, RateLimitError),   # 1634: a batch too large, never retried
    Rule(RC_LIMIT, DETAIL_NO_RETRY, RateLimitError),          # 1687
    Rule(RC_LIMIT, None, RETRY),                              # 1700 under HTTP 200
    Rule(RC_INPUT, None, InvalidRequestError),
    Rule(RC_PROCESSING, DETAIL_NO_STOCK, StockNotFoundError),
)


def return_code(data: Any) -> tuple[int, str | None, str]:
    """``(return_code, detail, redacted message)`` of a decoded body; a missing or odd code counts as 0."""
    if not isinstance(data, dict):
        return 0, None, ""
    rc_num = number(data.get("return_code", 0))
    rc = 0 if rc_num != rc_num else int(rc_num)  # nan (missing/odd) counts as 0
    msg = _secrets.redact(str(data.get("return_msg", "")))
    return rc, detail_code(msg), msg


def token_refused(response: httpx.Response) -> bool:
    """Kiwoom's "token invalid" answer: return_code 3 or detail 8005 (under any HTTP status)."""
    try:
        rc, detail, _ = return_code(response.json())
    except ValueError:
        return False
    return rc == RC_AUTH or detail == DETAIL_TOKEN_INVALID


def decode(resp: httpx.Response, api_id: str) -> Reply:
    """The answer's :class:`Reply`, or raise :class:`Transient` / the typed error of its rule."""
    if resp.status_code == 429:
        raise Transient("HTTP 429 too many requests", rate_limited=True)
    if resp.status_code >= 500:
        raise Transient(f"HTTP {resp.status_code}")
    try:
        data = resp.json()
    except ValueError:
        kind = resp.headers.get("content-type", "?")
        raise Transient(f"HTTP {resp.status_code} with a non-JSON body ({kind}); maintenance page?") from None
    if not isinstance(data, dict):
        raise Transient("JSON body is not an object")
    rc, detail, msg = return_code(data)
    if rc == 0:
        if resp.status_code == 200:
            return Reply(data, {k.lower(): v for k, v in resp.headers.items()})
        raise APIError(f"HTTP {resp.status_code}", api_id=api_id)
    rule = next((r for r in RULES if r.matches(rc, detail)), None)
    if rule is None:
        raise APIError(msg, return_code=rc, detail=detail, api_id=api_id)
    if rule.error is RETRY:
        raise Transient(f"return_code {rc} ({detail or 'limit'})", rate_limited=True)
    text = msg + rule.hint
    if rule.error is AuthenticationError and resp.history:
        # The auth flow already re-issued once for this request; say why a second refusal is final.
        text = (f"{msg or 'authentication failed'} — the token was refused again right after "
                "a re-issue; is another process logging in with the same app key?")
    if rule.error is AuthenticationError and not text:
        text = "authentication failed"
    raise rule.error(text, return_code=rc, detail=detail, api_id=api_id)
