"""Index daily bars (ka20006, 업종일봉조회요청): KOSPI, KOSDAQ and KOSPI200 levels.

Checked against Kiwoom's public examples (github.com/Kiwoom-Securities/Kiwoom-REST-API,
``examples/국내주식/차트/get_domestic_sector_daily_chart.py``): ``POST /api/dostk/chart``
with ``api-id: ka20006`` and body ``{"inds_cd", "base_dt"}``; ``inds_cd`` 001 종합(KOSPI),
101 종합(KOSDAQ), 201 KOSPI200 (others exist: 002-004, 302, 701); rows in
``inds_dt_pole_qry`` with ``dt, open_pric, high_pric, low_pric, cur_prc, trde_qty,
trde_prica``; paging by ``cont-yn``/``next-key`` like every chart.  The x100
encoding of levels ("252127" = 2,521.27) and the optional signs come from
``shared/kiwoom-api.md`` (measured by public projects, not in that example).

Guarantees: an unknown index name is refused before any request; levels are
divided by 100 and made absolute; the walk ends on ``cont-yn: N``, an empty
or all-blank page, a repeated key or a page cap, like ka10081's.  Pacing,
retries and errors are the client's (``KiwoomAPI._request``).

Not guaranteed: the unit of ``trde_prica`` for indices (taken as millions of
KRW, as on stock rows); an index has no corporate actions, so no adjustment
applies and none is asked for.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from .._exceptions import InvalidInputError, StockNotFoundError
from .._models import API_INDEX, DAILY_PAGE_SIZE, H_CONT, H_NEXT, INDEX_CODES, INDEX_LIST_KEY, INDEX_SCALE, VALUE_UNIT_KRW
from ._parse import BAR_COLUMNS, finish_bars, is_blank_row, number

log = logging.getLogger("finder.client")

INDEX_NAMES = tuple(INDEX_CODES)


def index_code(name: Any) -> str:
    """``'KOSPI'`` → ``'001'``; anything else that is not a known index name is refused."""
    if not isinstance(name, str) or name.strip().upper() not in INDEX_CODES:
        raise InvalidInputError(f"index={name!r} is not an index finder knows; use one of {list(INDEX_NAMES)}")
    return INDEX_CODES[name.strip().upper()]


def index_name(name: Any) -> str:
    """The canonical name (``'kospi'`` → ``'KOSPI'``), refusing unknown ones."""
    index_code(name)
    return name.strip().upper()


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    """ka20006 rows (any order) → bars indexed by ``date`` ascending; levels /100, absolute."""
    dates, cols = [], {c: [] for c in BAR_COLUMNS}
    for row in rows:
        dt = str(row.get("dt", "") or "").strip()
        if len(dt) != 8 or not dt.isdigit():
            continue
        dates.append(dt)
        for wire, col in (("open_pric", "open"), ("high_pric", "high"), ("low_pric", "low"), ("cur_prc", "close")):
            cols[col].append(abs(number(row.get(wire))) / INDEX_SCALE)
        cols["volume"].append(abs(number(row.get("trde_qty"))))
        cols["value"].append(abs(number(row.get("trde_prica"))) * VALUE_UNIT_KRW)
    index = pd.DatetimeIndex(pd.to_datetime(dates, format="%Y%m%d"), name="date")
    frame = pd.DataFrame({c: np.asarray(v, dtype="float64") for c, v in cols.items()}, index=index)
    frame = frame[~frame.index.duplicated(keep="first")].sort_index()
    return finish_bars(frame)


def index_walk(api, name: str, base_dt: pd.Timestamp, count: int, stop_after: pd.Timestamp | None = None
               ) -> tuple[pd.DataFrame, bool]:
    """Walk ka20006 back from ``base_dt`` until ``count`` bars (or the start, or ``stop_after``) are in hand.

    Returns ``(bars, reached_start)``: bars ascending, on or before
    ``base_dt``; ``reached_start`` is True only when the server said there
    is nothing older.  ``stop_after``: stop once a page reaches back to that
    date (an extension walk that only needs the sessions after it).
    Raises ``StockNotFoundError`` when the first page holds no bar.
    """
    code = index_code(name)
    body = {"inds_cd": code, "base_dt": base_dt.strftime("%Y%m%d")}
    limit = body["base_dt"]
    rows: list[dict] = []
    dates: set[str] = set()
    seen: set[str] = set()
    key: str | None = None
    pages, reached_start = 0, False
    max_pages = count // DAILY_PAGE_SIZE + 3
    stop = stop_after.strftime("%Y%m%d") if stop_after is not None else None
    while True:
        data, headers = api._send(API_INDEX, body, key)
        pages += 1
        page = data.get(INDEX_LIST_KEY)
        real = [r for r in (page if isinstance(page, list) else []) if isinstance(r, dict) and not is_blank_row(r)]
        if not real:
            if not rows:
                raise StockNotFoundError(f"no index bars for {name} ({code}) on or before {base_dt.date()}",
                                         api_id=API_INDEX)
            log.warning("%s %s: page %d was empty or blank; stopping the walk", API_INDEX, code, pages)
            break
        for r in real:
            dt = str(r.get("dt", "")).strip()
            if dt and dt <= limit and dt not in dates:
                dates.add(dt)
                rows.append(r)
        if len(dates) >= count or (stop is not None and min(dates) <= stop):
            break
        nxt = str(headers.get(H_NEXT, "") or "").strip()
        if str(headers.get(H_CONT, "N")).strip().upper() != "Y":
            reached_start = True
            break
        if not nxt or nxt in seen or pages >= max_pages:
            log.warning("%s %s: walk stopped after page %d (missing or repeated key, or page cap)",
                        API_INDEX, code, pages)
            break
        seen.add(nxt)
        key = nxt
    return rows_to_frame(rows), reached_start


def get_index_bars(api, name: str, count: int, base_dt: pd.Timestamp) -> pd.DataFrame:
    """The last ``count`` index bars on or before ``base_dt``, straight from the server (no cache)."""
    frame, _ = index_walk(api, name, base_dt, count)
    return frame.iloc[-count:]
