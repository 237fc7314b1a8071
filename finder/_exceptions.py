"""finder's exceptions.

The hierarchy::

    FinderError                      every error finder raises on purpose
    ├── InvalidInputError            bad arguments, refused before any request
    │                                (also a ValueError)
    ├── CacheError                   the disk cache cannot be used as asked
    └── KiwoomError                  anything that came from talking to Kiwoom
        ├── TransportError           network failure, timeout, 5xx, non-JSON body,
        │                            after the bounded retries ran out
        └── APIError                 Kiwoom answered with a non-zero return_code;
            │                        carries .return_code, .detail and .message
            ├── AuthenticationError  return_code 3 / 8005, or 8030 (wrong host)
            ├── RateLimitError       429 / 1700 that outlasted every retry,
            │                        or 1634/1687, which must not be retried
            ├── InvalidRequestError  return_code 2: Kiwoom refused the input
            └── StockNotFoundError   unknown code (1902, or an all-blank answer),
                                     or no bars on or before the date asked

Messages never contain the app key, the secret key or a token: see
``finder.client._secrets`` for the redaction every message passes through.
"""

from __future__ import annotations

__all__ = [
    "FinderError",
    "InvalidInputError",
    "CacheError",
    "KiwoomError",
    "TransportError",
    "APIError",
    "AuthenticationError",
    "RateLimitError",
    "InvalidRequestError",
    "StockNotFoundError",
]


class FinderError(Exception):
    """Base class of every error finder raises on purpose."""


class InvalidInputError(FinderError, ValueError):
    """An argument is malformed or out of range; nothing was requested or cached."""


class CacheError(FinderError):
    """The disk cache cannot be used as asked (e.g. an unsafe folder)."""


class KiwoomError(FinderError):
    """Something went wrong while talking to the Kiwoom REST API."""


class TransportError(KiwoomError):
    """The request did not get a usable answer after the bounded retries."""


class APIError(KiwoomError):
    """Kiwoom answered with a non-zero ``return_code``.

    Attributes: ``return_code`` (int), ``detail`` (the 4-digit code inside
    ``return_msg``, or None), ``message`` (Kiwoom's text), ``api_id``.
    """

    def __init__(self, message: str, *, return_code: int | None = None,
                 detail: str | None = None, api_id: str | None = None) -> None:
        self.return_code = return_code
        self.detail = detail
        self.message = message
        self.api_id = api_id
        where = f"{api_id}: " if api_id else ""
        code = f" (return_code={return_code}, detail={detail})" if return_code is not None else ""
        super().__init__(f"{where}{message}{code}")


class AuthenticationError(APIError):
    """The token was refused (3 / 8005) even after one re-issue, or the key is for the other host (8030)."""


class RateLimitError(APIError):
    """Kiwoom's request limit was still hit after every retry, or the batch was too large."""


class InvalidRequestError(APIError):
    """Kiwoom refused the request's input (``return_code`` 2)."""


class StockNotFoundError(APIError):
    """No such stock, or no bars for it on or before the date asked."""
