"""``Reply``: what :meth:`KiwoomClient.request` returns for one Kiwoom operation.

A ``NamedTuple`` of two plain dicts, so both spellings work::

    reply = client.request("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "0"})
    reply.data["list"], reply.headers.get("cont-yn")
    data, headers = client.request(...)

Guarantees: ``data`` is the decoded JSON object of a successful answer
(``return_code`` 0; any other code has already been raised as a typed
``finder.APIError``); ``headers`` holds the response headers with
**lower-case names** (``cont-yn``, ``next-key``, ``api-id``, ...) and string
values.  Nothing in it is shared with the client: mutating it changes nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Reply(NamedTuple):
    """The decoded JSON body and the response headers (lower-case names) of one answer."""

    data: dict[str, Any]
    headers: dict[str, str]
