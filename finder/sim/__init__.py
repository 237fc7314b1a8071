"""The offline Kiwoom: a protocol-faithful simulator of the Kiwoom REST API.

It serves tokens (au10001/au10002), daily charts (ka10081), stock lists
(ka10099), watchlist quotes (ka10095), index daily bars (ka20006: KOSPI,
KOSDAQ and KOSPI200 computed from its own stocks, cap-weighted) and the
traded-value ranking (ka10032) with Kiwoom's quirks: KST token
expiry, a new token superseding the old (3 / 8005), header paging,
adjustment as of ``base_dt``, blank rows for unknown codes, the NXT empty
page, a per (app key, api-id) rate limit answered with HTTP 429, and
injectable faults.  See ``shared/kiwoom-api.md`` for the protocol facts.

Example::

    >>> from finder.sim import Simulator
    >>> with Simulator(rate=None, now="2025-11-28T20:30+09:00") as sim:  # doctest: +SKIP
    ...     print(sim.url)

Markets: ``SyntheticMarket`` (deterministic, 2015-2027, splits, dividends,
listings, delistings, halts) or ``ReplayMarket.from_csv`` (real bars).
``market.bars(code, base_dt, adjusted, now)`` is the oracle of what ka10081
serves.

What it does not do: orders, real prices, HTTPS, or any check that the
app key is a real one (any non-empty pair logs in unless ``credentials``
is given).  All data is simulated.
"""

from ._app import RateLimiter, Reply, SimApp
from ._clock import HORIZON, KST, SimClock
from ._faults import KINDS as FAULT_KINDS
from ._faults import Fault, Faults
from ._market import (
    NXT_START,
    CorporateAction,
    Market,
    ReplayMarket,
    StockInfo,
    SyntheticMarket,
    default_market,
    price_factors,
)
from ._server import Simulator, SimTransport, in_process_transport, serve

__all__ = [
    "Simulator",
    "SimApp",
    "SimTransport",
    "SimClock",
    "Reply",
    "RateLimiter",
    "Market",
    "SyntheticMarket",
    "ReplayMarket",
    "StockInfo",
    "CorporateAction",
    "Fault",
    "Faults",
    "FAULT_KINDS",
    "default_market",
    "in_process_transport",
    "serve",
    "price_factors",
    "NXT_START",
    "HORIZON",
    "KST",
]
