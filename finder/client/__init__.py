"""The raw Kiwoom REST client, the bottom layer: wire protocol, tokens, pacing, retries; no cache.

One public class behind small private modules, layered as httpx layers
send → auth → single request:

``_api``        ``KiwoomClient``: operations (ka10081 walks, ka10099, ka10095, ``request``)
``_retry``      retry one whole send on transient failures, bounded backoff
``_auth``       ``TokenAuth`` (httpx.Auth): attach the shared token, re-issue once on 3 / 8005
``_pacer``      an httpx request hook: pace and count every single send
``_decode``     HTTP status and ``return_code`` → ``Reply`` or a typed error, by a table
``_token``      one token per (host, app key), shared through a file; real-time lifetimes
``_ratelimit``  cross-process pacing slots
``_state``      the per-user state folder (``FINDER_STATE_DIR``) keyed by (host, app key)
``_parse``, ``_quotes``, ``_secrets``, ``_stats``, ``_reply``

Nothing here imports ``finder.cache``; the cached ``finder.KiwoomAPI``
(``finder._cached``) wraps a ``KiwoomClient``.
"""

from ._api import DailyWalk, KiwoomClient, parse_markets
from ._reply import Reply

__all__ = ["KiwoomClient", "DailyWalk", "Reply", "parse_markets"]
