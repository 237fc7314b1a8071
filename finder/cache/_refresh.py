"""Bringing cached histories up to date in ⌈N/100⌉ requests: batched quotes (ka10095).

A per-stock ka10081 walk costs one request per stock and session.  One ka10095
request returns today's bar for 100 stocks, so once the newest session is
final (after the cut-off) finder extends every cached history that is exactly
one session behind from batched quotes:

* a quote whose reference price (``base_pric``) equals our previous close adds
  its bar as raw and adjusted at once;
* a different reference price means a corporate action today: that stock's
  adjusted history is fetched again with one ka10081 walk, and its raw bar
  still comes from the quote;
* a stock that did not trade today (halted) gets no bar, never a made-up one;
  it stays as it is and a later ``get_ohlcv`` fetches it the usual way;
* a history more than one session behind cannot be filled from quotes (they
  only show today): it is extended with one ka10081 walk (the rule for
  missed sessions), as is an unknown code.

Results equal a full per-stock refetch bar for bar (tests compare both).
Before the cut-off, quotes are live bars: ``prefetch_live`` stores them as
the live entries that ``get_ohlcv`` would otherwise fetch one by one, under
the same TTL.
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
import pandas as pd

from .. import calendar
from .._exceptions import KiwoomError
from ._store import Store

log = logging.getLogger("finder.cache")

MIN_BATCH = 2  # below this a plain ka10081 walk costs the same


def _behind(store: Store, codes: Iterable[str], session: pd.Timestamp,
            pointers=None) -> tuple[list[str], list[str], int]:
    """Split cached codes into (one session behind, further behind); count those already current."""
    day = np.datetime64(session.date(), "D")
    prev = np.datetime64(calendar.previous_session(session).date(), "D")
    one, more, current = [], [], 0
    for code in codes:
        hist = store._latest.get(code)
        if hist is not None and hist.anchor >= day:
            current += 1
            continue
        ptr = pointers.get(code) if pointers is not None else store.read_pointer(code)
        if ptr is None:
            continue
        anchor = np.datetime64(ptr["anchor"], "D")
        if anchor >= day:
            current += 1
        elif anchor == prev:
            one.append(code)
        else:
            more.append(code)
    return one, more, current


def refresh_histories(client, codes: Iterable[str] | None = None, progress: bool = False) -> dict:
    """Bring cached histories (all, or those of ``codes``) up to the newest final session.

    Returns counts: ``current`` (already up to date), ``from_quotes``,
    ``actions`` (refetched after a corporate action), ``halted`` (no trade
    today: no bar), ``walked`` (filled with ka10081), ``failed``.
    """
    store = Store.for_client(client)
    store.check_safe()
    session = calendar.latest_final_session()
    if codes is None:
        codes = store.index.codes()
    codes = list(dict.fromkeys(codes))
    one, more, current = _behind(store, codes, session)
    out = {"session": str(session.date()), "stocks": len(codes), "current": current, "from_quotes": 0,
           "actions": 0, "halted": 0, "walked": 0, "failed": {}}
    if len(one) < MIN_BATCH:
        more, one = more + one, []
    if one:
        quotes = client.get_quotes(one)
        for code in quotes.attrs.get("unknown", []):
            more.append(code)
        for code, row in quotes.iterrows():
            if not bool(row["traded"]) or row["date"] != session:
                out["halted"] += 1
                continue
            before = store.read_pointer(code)
            try:
                done = store.extend_with_quote(client, code, session, row)
            except KiwoomError as exc:
                out["failed"][code] = f"{type(exc).__name__}: {exc}"
                continue
            if not done:
                more.append(code)
                continue
            after = store.read_pointer(code)
            if before and after and after["spec"][1] != before["spec"][1]:
                out["actions"] += 1
            else:
                out["from_quotes"] += 1
    end = np.datetime64(session.date(), "D")
    if more:
        from .._progress import progress as tqdm  # widget, terminal or a one-line log (finder._progress)

        for code in tqdm(more, desc="refresh (ka10081)", unit="stock", disable=not progress, leave=False):
            try:
                hist = store.ensure(client, code, end, 1)
                out["walked"] += 1 if hist is not None else 0
            except KiwoomError as exc:
                out["failed"][code] = f"{type(exc).__name__}: {exc}"
    from ._index_bars import refresh as refresh_indices  # index bars (ka20006) stay current too
    out.update(refresh_indices(client))
    return out


def refresh_if_behind(client, codes: list[str], session: pd.Timestamp, pointers=None) -> list[str]:
    """Before serving many stocks at the newest session, extend the ones a session behind from quotes.

    Called by ``get_panel`` (and so by ``scan``); quietly does nothing when
    there is nothing to gain.  Returns the codes it looked at refreshing.
    """
    if session != calendar.latest_final_session():
        return []
    store = Store.for_client(client)
    one, _more, _ = _behind(store, codes, session, pointers)
    if len(one) >= MIN_BATCH:
        try:
            refresh_histories(client, one)
        except KiwoomError as exc:  # the per-stock path still works; say why we fell back
            log.warning("batched refresh failed (%s); fetching stock by stock", exc)
        return one
    return []


def prefetch_live(client, codes: list[str], session: pd.Timestamp) -> int:
    """Store today's live bars for ``codes`` from batched quotes; returns how many were stored.

    Skips stocks whose live entry is still fresh, and stocks whose reference
    price shows a corporate action today (their per-stock live walk also
    brings the adjusted previous row that such a day needs).
    """
    from ._fetch import live_from_quote

    store = Store.for_client(client)
    store.check_safe()  # before anything reads the folder
    prev = np.datetime64(calendar.previous_session(session).date(), "D")
    key = session.strftime("%Y-%m-%d")
    wanted = []
    for code in codes:
        if store.live_is_fresh(code, session):
            continue
        wanted.append(code)
    if len(wanted) < MIN_BATCH:
        return 0
    quotes = client.get_quotes(wanted)
    stored = 0
    for code, row in quotes.iterrows():
        hist = store.cached_history(client, code)
        if hist is None or hist.last_row is None or hist.last_row != prev:
            continue
        if float(row["base_price"]) != float(hist.adj[-1][3]):
            continue  # an action today: let the per-stock live walk handle it
        live_from_quote(code, key, row, session)
        store.live(client, code, session)
        stored += 1
    return stored
