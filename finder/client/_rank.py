"""Traded-value ranking (ka10032, 거래대금상위요청): today's most-traded stocks.

Facts confirmed against Kiwoom's own public examples, repository
github.com/Kiwoom-Securities/Kiwoom-REST-API, file
``examples/국내주식/순위정보/get_domestic_trading_value_top.py`` (header
``api_id: ka10032``, ``api_url: /api/dostk/rkinfo``):

* ``POST /api/dostk/rkinfo`` with ``api-id: ka10032``;
* body ``mrkt_tp`` (``000`` all, ``001`` KOSPI, ``101`` KOSDAQ),
  ``mang_stk_incls`` (``0`` managed stocks excluded, ``1`` included) and
  ``stex_tp`` (``1`` KRX, ``2`` NXT, ``3`` both), all three required;
* rows in ``trde_prica_upper`` with ``stk_cd, now_rank, pred_rank, stk_nm,
  cur_prc, pred_pre_sig, pred_pre, flu_rt, sel_bid, buy_bid, now_trde_qty,
  pred_trde_qty, trde_prica``;
* paging by the ``cont-yn`` / ``next-key`` response headers (the example
  loops on ``cont_yn == "Y"``).

Not confirmed there (taken from ``shared/seed-api.md`` and third-party code):
codes may carry a venue suffix (``005930_AL``), stripped here; ``trde_prica``
is read as millions of KRW, as on chart rows; prices carry direction signs,
so they are made absolute.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from .._exceptions import InvalidInputError
from .._models import API_RANK, H_CONT, H_NEXT, RANK_EXCHANGES, RANK_LIST_KEY, RANK_MARKETS, VALUE_UNIT_KRW
from ._parse import number

log = logging.getLogger("finder.client")

RANK_COLUMNS = ["rank", "code", "name", "price", "change_rate", "volume", "value"]
MAX_PAGES = 20


def _choice(value: Any, table: dict, name: str) -> str:
    if not isinstance(value, str) or value.strip().upper() not in table:
        raise InvalidInputError(f"{name}={value!r} is not one of {list(table)}")
    return table[value.strip().upper()]


def strip_venue(code: str) -> str:
    """``'005930_AL'`` → ``'005930'`` (``_AL`` / ``_NX`` select a venue, not a stock)."""
    return code.strip().split("_", 1)[0]


def rank_body(market: str = "ALL", exchange: str = "KRX", managed: bool = False) -> dict:
    """The ka10032 request body (validated)."""
    if not isinstance(managed, bool):
        raise InvalidInputError(f"managed={managed!r} is not True or False")
    return {"mrkt_tp": _choice(market, RANK_MARKETS, "market"), "mang_stk_incls": "1" if managed else "0",
            "stex_tp": _choice(exchange, RANK_EXCHANGES, "exchange")}


def get_top_traded(api, market: str = "ALL", limit: int | None = None, *, exchange: str = "KRX",
                   managed: bool = False) -> pd.DataFrame:
    """Stocks ranked by today's traded value: ``rank, code, name, price, change_rate, volume, value``.

    ``code`` has any venue suffix stripped; ``value`` is KRW; ``change_rate``
    is in percent.  ``limit``: stop paging once that many rows are in hand.

    Example::

        >>> api.get_top_traded("KOSPI", 20).code.tolist()  # doctest: +SKIP
    """
    body = rank_body(market, exchange, managed)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit={limit!r} must be a whole number >= 1 (or None for every row)")
    out: list[dict] = []
    seen_codes: set[str] = set()
    key, seen_keys = None, set()
    for _ in range(MAX_PAGES):
        data, headers = api._send(API_RANK, body, key)
        page = data.get(RANK_LIST_KEY)
        for it in page if isinstance(page, list) else []:
            if not isinstance(it, dict):
                continue
            code = strip_venue(str(it.get("stk_cd", "") or ""))
            if not code or code in seen_codes:
                continue
            seen_codes.add(code)
            rank = number(it.get("now_rank"))
            value = abs(number(it.get("trde_prica")))
            volume = abs(number(it.get("now_trde_qty")))
            out.append({
                "rank": int(rank) if rank == rank else len(out) + 1,
                "code": code,
                "name": str(it.get("stk_nm", "") or "").strip(),
                "price": abs(number(it.get("cur_prc"))),
                "change_rate": number(it.get("flu_rt")),
                "volume": 0 if volume != volume else int(volume),
                "value": 0 if value != value else int(value * VALUE_UNIT_KRW),
            })
        if limit is not None and len(out) >= limit:
            break
        nxt = str(headers.get(H_NEXT, "") or "").strip()
        if str(headers.get(H_CONT, "N")).strip().upper() != "Y" or not nxt or nxt in seen_keys or not page:
            break
        seen_keys.add(nxt)
        key = nxt
    frame = pd.DataFrame(out, columns=RANK_COLUMNS)
    frame = frame.sort_values("rank", kind="stable").reset_index(drop=True)
    return frame.iloc[:limit] if limit is not None else frame
