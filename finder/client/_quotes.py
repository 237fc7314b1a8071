"""Watchlist quotes (ka10095): today's bar for up to 100 stocks in one request.

Codes are joined with ``|`` (any other separator, or a market prefix, yields
blank rows), at most 100 per request (101 gives return_code 5 / 1634, which
is not a rate limit).  Kiwoom sends one row per requested code in request
order, an unknown code as a row whose ``stk_cd`` is empty.  Rows are matched
to codes **by the echoed ``stk_cd`` only, never by position**: a blank row
carries no code to check, and trusting positions would pin one stock's bar on
another if the server ever dropped or reordered a row.  A requested code
with no row echoing it is reported as unknown.  Prices are signed by direction, so every
price is made absolute.  ``base_pric`` is the reference price: the previous
close, or on an ex-rights / ex-distribution day the exchange-adjusted one.
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
import pandas as pd

from .. import _validate, calendar
from .._exceptions import InvalidInputError
from .._models import API_QUOTES, QUOTES_LIST_KEY, QUOTES_MAX_CODES, QUOTES_SEPARATOR, VALUE_UNIT_KRW
from ._parse import number

log = logging.getLogger("finder.client")

QUOTE_COLUMNS = ["name", "date", "open", "high", "low", "close", "volume", "value", "base_price", "traded"]


def batches(codes: list[str], size: int = QUOTES_MAX_CODES) -> list[list[str]]:
    return [codes[i:i + size] for i in range(0, len(codes), size)]


def get_quotes(api, codes: Iterable[str]) -> pd.DataFrame:
    """Today's bar per code: ``name, date, open, high, low, close, volume, value, base_price, traded``.

    ``traded`` is False for a stock with no trade today (halted): such a row
    is no bar.  Unknown codes are listed in ``.attrs["unknown"]`` and logged.

    Example::

        >>> api.get_quotes(["005930", "000660"])[["close", "base_price"]]  # doctest: +SKIP
    """
    if isinstance(codes, str):
        codes = [codes]
    if not isinstance(codes, (list, tuple, pd.Index, pd.Series, np.ndarray)):
        raise InvalidInputError(f"codes={codes!r} is not a list of stock codes")
    wanted: list[str] = []
    for c in codes:
        v = _validate.code(c, "codes[]")
        if v not in wanted:
            wanted.append(v)
    if not wanted:
        raise InvalidInputError("codes is empty")
    today = calendar.today()
    rows, unknown = {}, []
    for batch in batches(wanted):
        data, _ = api._send(API_QUOTES, {"stk_cd": QUOTES_SEPARATOR.join(batch)})
        items = data.get(QUOTES_LIST_KEY)
        items = items if isinstance(items, list) else []
        # By the echoed code only (see the module docstring); blank rows echo "" and match nothing.
        by_code = {str(it.get("stk_cd", "")).strip(): it for it in items if isinstance(it, dict)}
        by_code.pop("", None)
        for code in batch:
            it = by_code.get(code)
            if it is None:
                unknown.append(code)
                continue
            dt = str(it.get("dt", "") or "").strip()
            day = pd.Timestamp(dt) if len(dt) == 8 and dt.isdigit() else today
            volume = abs(number(it.get("trde_qty")))
            open_ = abs(number(it.get("open_pric")))
            rows[code] = {
                "name": str(it.get("stk_nm", "") or "").strip(),
                "date": day,
                "open": open_,
                "high": abs(number(it.get("high_pric"))),
                "low": abs(number(it.get("low_pric"))),
                "close": abs(number(it.get("cur_prc"))),
                "volume": 0 if volume != volume else int(volume),
                "value": int(abs(number(it.get("trde_prica"))) * VALUE_UNIT_KRW) if it.get("trde_prica") else 0,
                "base_price": abs(number(it.get("base_pric"))),
                "traded": bool(volume == volume and volume > 0 and open_ == open_ and open_ > 0),
            }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=QUOTE_COLUMNS)
    frame.index.name = "code"
    frame["date"] = pd.to_datetime(frame["date"])
    frame.attrs["unknown"] = unknown
    if unknown:
        log.warning("ka10095: %d unknown code(s) came back blank: %s", len(unknown), ", ".join(unknown[:10]))
    return frame
