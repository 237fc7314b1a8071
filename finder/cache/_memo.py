"""The functions joblib.Memory memoizes: kept tiny and stable on purpose.

joblib wipes a memoized function's whole cache when that function's source
changes, so these bodies only delegate.  Editing any other module in finder
never invalidates a user's cache; changing what is stored means bumping
``FORMAT_VERSION``, which is part of every key.

The ``client`` argument is excluded from the key (``ignore=["client"]``) and
from ``metadata.json``: keys hold only the stock code, the resolved session
range, the adjustment mode and the format version, never credentials.
"""

from __future__ import annotations

FORMAT_VERSION = 1


def walk(code, base_dt, depth, adjusted, version, client=None):
    from . import _fetch

    return _fetch.walk(client, code, base_dt, depth, adjusted)


def history(code, spec, version, client=None):
    from . import _fetch

    return _fetch.history_blob(client, code, spec)


def live(code, session, version, client=None):
    from . import _fetch

    return _fetch.live(client, code, session)


def stock_list(market, day, version, client=None):
    from . import _fetch

    return _fetch.stock_list(client, market, day)


def quote_bar(code, session, version, client=None):
    from . import _fetch

    return _fetch.quote_bar(client, code, session)

