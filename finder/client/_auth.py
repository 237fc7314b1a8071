"""``TokenAuth``: the Kiwoom token as an ``httpx.Auth``: issue, attach, re-issue once when refused.

httpx runs :meth:`TokenAuth.auth_flow` around every request sent with it:
the flow takes the shared token (issuing it on first use), sets
``authorization: Bearer <token>``, and reads the answer
(``requires_response_body``).  When Kiwoom refuses the token
(``return_code`` 3 or detail 8005: expired, revoked, or superseded by another
login), the flow replaces it once through the token store (one issuer at a
time, across processes) and sends the request again.  A second refusal is
returned as it is, with the first in ``response.history``; the decoding layer
raises it as ``AuthenticationError``.

Not here: pacing (each send, the re-send included, is paced by the transport
below) and retries (the layer above runs the whole flow again).
"""

from __future__ import annotations

import logging
from typing import Callable, Generator

import httpx

from .._models import H_API_ID, H_AUTH
from ._decode import token_refused
from ._token import Token

log = logging.getLogger("finder.client")


class TokenAuth(httpx.Auth):
    """Attach the shared token; re-issue it once when the server refuses it."""

    requires_response_body = True

    def __init__(self, store, issue: Callable[[], Token]) -> None:
        self.store = store  # MemoryTokenStore or FileTokenStore
        self.issue = issue

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.store.get(self.issue)
        request.headers[H_AUTH] = f"Bearer {token.value}"
        response = yield request
        if not token_refused(response):
            return
        log.info("%s: token refused; re-issuing once", request.headers.get(H_API_ID, "?"))
        token = self.store.replace(token.value, self.issue)
        request.headers[H_AUTH] = f"Bearer {token.value}"
        yield request

    def __repr__(self) -> str:  # never the token
        return f"TokenAuth({self.store!r})"
