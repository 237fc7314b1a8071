"""A small FastAPI backend written the way the old screener backend was: against ``kiwoom_api.api``.

Only its import line differs from the old code.  ``tests/test_uvicorn_compat.py``
runs it under ``uvicorn --workers 4``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from finder.compat import api  # was: from kiwoom_api import api

app = FastAPI()


@app.get("/health")
def health() -> dict:
    return {"ok": True, "worker": os.getpid()}


@app.get("/scan")
def scan(market: str = "KOSPI", limit: int = 10, count: int = 60, base_dt: str | None = None) -> dict:
    picks = []
    for code in api.get_top_codes(market, limit):
        df = api.get_ohlcv(code, count, base_dt)
        if df.empty or len(df) < 21:
            continue
        last = df.iloc[-1]
        picks.append({"code": code, "name": api.get_stock_name(code), "date": df["date"].iloc[-1],
                      "close": float(last["close"]), "volume": int(last["volume"]),
                      "ret20": float(last["close"] / df["close"].iloc[-21] - 1)})
    return {"worker": os.getpid(), "picks": picks}


@app.get("/history/{code}")
def history(code: str, count: int = 220, base_dt: str | None = None) -> dict:
    df = api.get_ohlcv(code, count, base_dt)
    return {"worker": os.getpid(), "name": api.get_stock_name(code), "rows": df.to_dict("records")}
