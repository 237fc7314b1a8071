"""Shared models: the Kiwoom REST protocol's names and constants.

Both the client (``finder.client``) and the simulator (``finder.sim``) import
this module, and the simulator imports nothing else from finder.  Keeping the
wire names in one place means the two sides cannot drift apart silently.

Facts come from ``../shared/kiwoom-api.md``.
"""

from __future__ import annotations

import re

# --- hosts -----------------------------------------------------------------
PRODUCTION_URL = "https://api.kiwoom.com"
MOCK_URL = "https://mockapi.kiwoom.com"

# --- paths and operations (api-id header) ----------------------------------
TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
CHART_PATH = "/api/dostk/chart"
STKINFO_PATH = "/api/dostk/stkinfo"

API_TOKEN = "au10001"
API_REVOKE = "au10002"
API_DAILY = "ka10081"
API_STOCK_LIST = "ka10099"
API_QUOTES = "ka10095"

# The path each operation is served on.
API_PATHS = {
    API_TOKEN: TOKEN_PATH,
    API_REVOKE: REVOKE_PATH,
    API_DAILY: CHART_PATH,
    API_STOCK_LIST: STKINFO_PATH,
    API_QUOTES: STKINFO_PATH,
}

# --- headers ---------------------------------------------------------------
CONTENT_TYPE = "application/json;charset=UTF-8"
H_API_ID = "api-id"
H_CONT = "cont-yn"
H_NEXT = "next-key"
H_AUTH = "authorization"

# --- daily chart (ka10081) ---------------------------------------------------
DAILY_LIST_KEY = "stk_dt_pole_chart_qry"
DAILY_PAGE_SIZE = 600  # measured; paging is driven by cont-yn, not by this
# Row fields: the wire name -> finder's column name.
DAILY_FIELDS = {
    "dt": "date",
    "open_pric": "open",
    "high_pric": "high",
    "low_pric": "low",
    "cur_prc": "close",  # the close for past sessions, the live price today
    "trde_qty": "volume",
    "trde_prica": "value",  # millions of KRW on daily rows
    "pred_pre": "change",
    "pred_pre_sig": "change_sign",
    "trde_tern_rt": "turnover",
}
VALUE_UNIT_KRW = 1_000_000  # trde_prica is in millions of KRW

# --- stock list (ka10099) ---------------------------------------------------
STOCK_LIST_KEY = "list"
# finder's market names -> ka10099's mrkt_tp.  These are NOT the codes that
# ranking operations use (001/101).
MARKET_CODES = {"KOSPI": "0", "KOSDAQ": "10", "ETF": "8", "ETN": "60", "KONEX": "50", "ELW": "3"}

# --- watchlist quotes (ka10095) ---------------------------------------------
QUOTES_LIST_KEY = "atn_stk_infr"
QUOTES_MAX_CODES = 100
QUOTES_SEPARATOR = "|"

# --- return codes and detail codes ------------------------------------------
RC_OK = 0
RC_INPUT = 2
RC_AUTH = 3
RC_LIMIT = 5
RC_PROCESSING = 7

DETAIL_MISSING_FIELD = "1511"
DETAIL_BAD_FORMAT = "1517"
DETAIL_WRONG_ENV = "8030"
DETAIL_TOKEN_INVALID = "8005"
DETAIL_TOO_MANY = "1700"
DETAIL_BATCH_TOO_LARGE = "1634"
DETAIL_NO_RETRY = "1687"
DETAIL_NO_STOCK = "1902"

DETAIL_RE = re.compile(r"\[(\d{4})\s*:?")


def detail_code(return_msg: str) -> str | None:
    """The 4-digit detail code inside ``return_msg`` (``"...[8005:...]"``), if any."""
    m = DETAIL_RE.search(return_msg or "")
    return m.group(1) if m else None


# --- stock codes ---------------------------------------------------------------
# A KRX short code is six characters. Historically all digits; since 2024 KRX
# also issues codes with capital letters (e.g. "0004V0"), so letters are allowed
# after a leading digit. `_NX` selects NXT, `_AL` smart routing across both.
CODE_RE = re.compile(r"^[0-9][0-9A-Z]{5}(?:_NX|_AL)?$")
NXT_SUFFIX = "_NX"
ALL_SUFFIX = "_AL"

# --- index daily bars (ka20006) and the traded-value ranking (ka10032) --------
# Appended by the compat work; see finder/client/_index.py and _rank.py for the
# sources each fact was checked against.
RKINFO_PATH = "/api/dostk/rkinfo"
API_INDEX = "ka20006"
API_RANK = "ka10032"
API_PATHS.update({API_INDEX: CHART_PATH, API_RANK: RKINFO_PATH})

INDEX_LIST_KEY = "inds_dt_pole_qry"
INDEX_SCALE = 100  # levels come x100 without a decimal point: "252127" = 2,521.27
# finder's index names -> ka20006's inds_cd (3-digit market codes, not ka10099's mrkt_tp)
INDEX_CODES = {"KOSPI": "001", "KOSDAQ": "101", "KOSPI200": "201"}

RANK_LIST_KEY = "trde_prica_upper"
# ka10032 mrkt_tp: 000 all, 001 KOSPI, 101 KOSDAQ; stex_tp: 1 KRX, 2 NXT, 3 both
RANK_MARKETS = {"ALL": "000", "KOSPI": "001", "KOSDAQ": "101"}
RANK_EXCHANGES = {"KRX": "1", "NXT": "2", "ALL": "3"}
