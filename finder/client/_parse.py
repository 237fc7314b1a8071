"""Turning Kiwoom's string rows into typed values and frames.

Kiwoom sends every value as a string: signed (``"+600"``, ``"-78800"``),
zero-padded (``"00136000"``) or empty.  Prices are made absolute because
several operations put a direction sign on them.  Unknown keys are ignored and
every known key is optional.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .._models import DAILY_FIELDS, VALUE_UNIT_KRW

BAR_COLUMNS = ["open", "high", "low", "close", "volume", "value"]


def number(text: Any) -> float:
    """``"+600"`` → 600.0, ``"-78800"`` → -78800.0, ``"00136000"`` → 136000.0, ``""`` → nan."""
    if text is None:
        return math.nan
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().replace(",", "")
    if not s or s in {"+", "-"}:
        return math.nan
    try:
        return float(s)
    except ValueError:
        return math.nan


def is_blank_row(row: dict) -> bool:
    """True for the all-empty row Kiwoom sends for an unknown code or a date outside retention."""
    return all((v is None or str(v).strip() == "") for v in row.values())


def daily_rows_to_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """ka10081 rows (any order) → a frame indexed by ``date`` ascending, unique.

    Blank rows and rows without a date are dropped. Prices are absolute values.
    """
    dates, cols = [], {c: [] for c in BAR_COLUMNS}
    for row in rows:
        dt = str(row.get("dt", "") or "").strip()
        if len(dt) != 8 or not dt.isdigit():
            continue
        dates.append(dt)
        for wire, col in DAILY_FIELDS.items():
            if col in ("open", "high", "low", "close"):
                cols[col].append(abs(number(row.get(wire))))
        cols["volume"].append(abs(number(row.get("trde_qty"))))
        cols["value"].append(abs(number(row.get("trde_prica"))) * VALUE_UNIT_KRW)
    index = pd.DatetimeIndex(pd.to_datetime(dates, format="%Y%m%d"), name="date")
    frame = pd.DataFrame({c: np.asarray(v, dtype="float64") for c, v in cols.items()}, index=index)
    frame = frame[~frame.index.duplicated(keep="first")].sort_index()
    return frame


def finish_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Final dtypes: float prices, int64 volume and value (missing counts become 0)."""
    out = frame[BAR_COLUMNS].copy()
    out["volume"] = out["volume"].fillna(0).round().astype("int64")
    out["value"] = out["value"].fillna(0).round().astype("int64")
    out.index.name = "date"
    return out
