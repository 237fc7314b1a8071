"""``get_ohlcv`` and ``get_panel`` served from the cache.

A request ``(code, count, base_dt, adjusted)`` is resolved with the XKRX
calendar in KST before anything else: ``base_dt=None`` or today becomes
today's session while its bar is live (09:00 to the cut-off) and the latest
final session otherwise; a holiday becomes the session before it.  Final bars
come from the stock's history (see ``_store``); a live bar comes from a short
entry that expires after ``FINDER_LIVE_TTL`` seconds (default 60).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .. import _validate, calendar
from .._exceptions import InvalidInputError, KiwoomError, StockNotFoundError
from ._history import History, bars_frame
from . import _panel
from ._store import Store

log = logging.getLogger("finder.cache")

FIELDS = ("open", "high", "low", "close", "volume", "value")


def resolve(when: pd.Timestamp | None) -> tuple[pd.Timestamp, bool]:
    """(session, is_live) for a validated ``base_dt`` (None = latest)."""
    return _resolve(when)[:2]


_RESOLVED: dict = {}


def _resolve(when: pd.Timestamp | None) -> tuple[pd.Timestamp, bool, np.datetime64]:
    """(session, is_live, session as datetime64[D]), remembered per (``when``, calendar state)."""
    state = calendar.state()
    key = (when, state)
    hit = _RESOLVED.get(key)
    if hit is not None:
        return hit
    today, live, final = state
    day = today if when is None else when
    if live is not None and day >= live:
        out = (live, True, _d(live))
    elif day >= final:
        out = (final, False, _d(final))
    else:
        session = calendar.session_on_or_before(day)
        out = (session, False, _d(session))
    if len(_RESOLVED) > 4096:
        _RESOLVED.clear()
    _RESOLVED[key] = out
    return out


def _d(ts: pd.Timestamp) -> np.datetime64:
    return np.datetime64(ts.date(), "D")


def _today_factor(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Today's price factor, from the previous row before (``ours``) and after (``theirs``) today's action.

    The close ratio is exact for a cash dividend (the exchange's reference price is the
    close minus the dividend, a whole number of won); it is used whenever every price of
    the row allows it (:func:`_history.factor_bounds`), else the middle of what they allow.
    """
    from ._history import factor_bounds

    lo, hi = factor_bounds(ours[None, :], theirs[None, :])
    lo, hi = float(lo[0]), float(hi[0])
    if ours[3] > 0 and theirs[3] > 0 and lo <= theirs[3] / ours[3] <= hi:
        return float(theirs[3] / ours[3])
    if np.isfinite(lo) and np.isfinite(hi) and lo <= hi:
        return (lo + hi) / 2
    return float(theirs.sum() / ours.sum())


def _apply_live(hist: History, end: np.datetime64, count: int, adjusted: bool, lv: dict):
    """Final rows before today plus today's live bar, adjusted as of today."""
    has_bar = bool(lv.get("has_bar"))
    n_final = count - 1 if has_bar else count
    dates, prices, volume, value = hist.arrays(end, max(n_final, 0), adjusted)
    if n_final <= 0:
        dates, prices, volume, value = dates[:0], prices[:0], volume[:0], value[:0]
    prices = np.array(prices, dtype="float64", copy=True)
    volume = np.array(volume, dtype="int64", copy=True)
    # A corporate action whose ex-date is today shows up as a changed previous row.
    if adjusted and "prev" in lv and hist.last_row is not None and lv["prev_date"] == hist.last_row:
        ours = hist.adj[-1]
        if not np.array_equal(lv["prev"], ours) and ours.sum() > 0:
            pf = _today_factor(ours, np.asarray(lv["prev"], dtype="float64"))
            vf = float(lv["prev_volume"] / hist.adj_volume[-1]) if hist.adj_volume[-1] else 1.0
            # Rounded once, from raw (as Kiwoom does): raw x (actions up to end) x today's factor.
            _, raw_p, _, _ = hist.arrays(end, max(n_final, 0), False)
            if n_final > 0 and len(raw_p) == len(prices):
                ev = hist.events
                use = ev.ex <= end
                suffix = np.concatenate([np.cumprod(ev.price[use][::-1])[::-1], [1.0]])
                cum = suffix[np.searchsorted(ev.ex[use], dates, "right")]
                prices = np.round(raw_p * (cum * pf)[:, None])
            else:
                prices = np.round(prices * pf)
            volume = np.round(volume * vf).astype("int64")
    if has_bar:
        o, h, l, c, v, val = lv["bar"]
        dates = np.append(dates, np.datetime64(lv["session"], "D"))
        prices = np.vstack([prices.reshape(-1, 4), [[o, h, l, c]]])
        volume = np.append(volume, v)
        value = np.append(value, val)
    return dates, prices, volume, value


def _arrays(store: Store, client, code: str, session: pd.Timestamp, live: bool, count: int, adjusted: bool,
            pointer: dict | None = None):
    if live:
        final_end = _d(calendar.previous_session(session))
        hist = store.ensure(client, code, final_end, count, pointer)
        lv = store.live(client, code, session)
        out = _apply_live(hist, final_end, count, adjusted, lv)
    else:
        end = _d(session)
        hist = store.ensure(client, code, end, count, pointer)
        out = hist.arrays(end, count, adjusted)
    if len(out[0]) == 0:
        raise StockNotFoundError(f"no daily bars for {code} on or before {session.date()} "
                                 "(not listed yet, or delisted long before)")
    return out


def get_ohlcv(client, code: str, count: int, when: pd.Timestamp | None, adjusted: bool) -> pd.DataFrame:
    """The cached ``get_ohlcv`` (arguments already validated by the caller).

    Before the open of a session, ``when`` None or today resolves to the last
    completed session, adjusted as of that session (finder's contract; Kiwoom
    already applies today's action then, finder makes no extra request for it).
    """
    store = Store.for_client(client)
    if not store.writable:
        store.warn_once("readonly", f"the cache folder {store.root} is not writable; serving data uncached")
        return client.fetch_ohlcv(code, count, when, adjusted)
    session, live, end = _resolve(when)
    if not live:
        if adjusted:
            store.check_safe()
            frame = store.frame_fast(code, end, count)
            if frame is not None:
                return frame
            with store._lru_lock:
                store._frames.pop(code, None)  # stale or unusable: reload after the full path
        hist = store.ensure(client, code, end, count)
        frame = hist.frame(end, count, adjusted)
        if frame.empty:
            raise StockNotFoundError(f"no daily bars for {code} on or before {session.date()} "
                                     "(not listed yet, or delisted long before)")
        if adjusted:
            store.repair_frame(code, hist)  # a cache of an older version, or a damaged ready frame
        return frame
    return bars_frame(*_arrays(store, client, code, session, live, count, adjusted))


def _codes(codes: Any) -> list[str]:
    if isinstance(codes, str):
        codes = [codes]
    if isinstance(codes, (pd.Index, pd.Series, np.ndarray)):
        codes = list(codes)
    if not isinstance(codes, (list, tuple)):
        raise InvalidInputError(f"codes={codes!r} is not a list of stock codes")
    out, seen = [], set()
    for c in codes:
        v = _validate.code(c, "codes[]")
        if v not in seen:
            seen.add(v)
            out.append(v)
    if not out:
        raise InvalidInputError("codes is empty")
    return out


def _fields(field: Any) -> tuple[list[str], bool]:
    single = isinstance(field, str)
    fields = [field] if single else field
    if not isinstance(fields, (list, tuple)) or not fields:
        raise InvalidInputError(f"field={field!r} must be one of {FIELDS} or a list of them")
    for f in fields:
        if f not in FIELDS:
            raise InvalidInputError(f"unknown field {f!r}; use one of {FIELDS}")
    return list(fields), single


def get_panel(client, codes: Iterable[str], count: int = 220, base_dt: Any = None, field: Any = "close",
              adjusted: bool = True, progress: bool | None = None):
    """Bars of many stocks in one frame: dates × codes (one field) or a dict of such frames.

    Stocks that cannot be served (unknown, no bars on or before the date, or an
    API error) are left out and listed with the reason in ``.attrs["missing"]``.
    """
    code_list = _codes(codes)
    count = _validate.count(count)
    when = _validate.base_dt(base_dt)
    fields, single = _fields(field)
    adjusted = _validate.boolean(adjusted, "adjusted")
    if progress is not None:  # a wrong type was taken as "show the bar"
        progress = _validate.boolean(progress, "progress")
    store = Store.for_client(client)
    session, live = resolve(when)

    # --- panel store (issue 11, finder/cache/_panel.py): a warm request is a slice of a mapped panel ---
    hit = None
    use_panels = store.writable and not live and len(code_list) >= _panel.MIN_CODES
    if use_panels:
        store.check_safe()
        hit = _panel.find(store, code_list, _d(session), count, adjusted, fields)
        if hit is not None and len(hit.codes) == len(code_list):
            _panel.touch(hit)
            return _finish(_panel.frames(hit, fields), {}, session, live, fields, single,
                           {"served": len(code_list), "carried": 0, "per_stock": 0, "built": False})
    served = set(hit.codes) if hit is not None else set()
    rest = [c for c in code_list if c not in served]
    # --- end of the panel store's entry; the per-stock path below serves the rest ---

    # Each stock's pointer is read once here and shared by the refresh check, the progress
    # check and the load (reading it three times was a third of a warm panel's time).
    pointers = _Pointers(store)

    if store.writable and rest:
        # Many stocks at the newest session: bring those a session behind up to date with
        # batched quotes (100 stocks a request) before the per-stock loop would walk each one.
        from ._refresh import prefetch_live, refresh_if_behind

        final_session = calendar.previous_session(session) if live else session
        touched = refresh_if_behind(client, rest, final_session, pointers)
        for code in touched:
            pointers.pop(code, None)  # moved on: ensure() reads it afresh
        if live:
            prefetch_live(client, rest, session)

    results: dict[str, tuple] = {}
    missing: dict[str, str] = {}
    parts: dict[str, _panel.Part] = {}
    if use_panels and rest:
        # After a refresh no panel reaches the new session, but an older one plus each pointer's
        # newest bars is the new panel for every stock without a new corporate action (_panel.extend).
        parts = _panel.extend(store, rest, _d(session), count, adjusted, pointers.stamped)
        for code, pt in parts.items():
            results[code] = (pt.dates[-count:], pt.prices[-count:], pt.volume[-count:], pt.value[-count:])
        if parts:
            log.info("get_panel: %d of %d stocks carried forward from a stored panel", len(parts), len(rest))
            rest = [c for c in rest if c not in parts]
    carried = len(parts)
    show = progress if progress is not None else len(rest) > 1
    bar = None
    if show and rest:
        from .._progress import progress as tqdm  # widget, terminal or a one-line log (finder._progress)

        # The bar only appears when something must be fetched; warm loads are too quick to need one.
        final_end = _d(calendar.previous_session(session)) if live else _d(session)
        cold = [c for c in rest if not _covered(store, c, final_end, count, pointers)]
        if cold:
            bar = tqdm(total=len(rest), desc="bars", unit="stock", leave=False, file=sys.stderr)
    try:
        for code in rest:
            try:
                if not store.writable:
                    df = client.fetch_ohlcv(code, count, session if not live else None, adjusted)
                    results[code] = (df.index.values.astype("datetime64[D]"),
                                     df[["open", "high", "low", "close"]].to_numpy(), df.volume.to_numpy(),
                                     df.value.to_numpy())
                elif use_panels:
                    # What _arrays does for a final session, keeping the history for the panel build.
                    end = _d(session)
                    sig = _panel.signature(store, code)  # before the load: a later change leaves a stale key
                    hist = store.ensure(client, code, end, count, pointers.get(code))
                    out = hist.arrays(end, count, adjusted)
                    if len(out[0]) == 0:
                        raise StockNotFoundError(f"no daily bars for {code} on or before {session.date()} "
                                                 "(not listed yet, or delisted long before)")
                    results[code] = out
                    if sig is None:  # first fetch: the pointer ensure() just wrote names this history
                        sig = _panel.signature(store, code)
                    pt = _panel.part(sig, hist, end, count, adjusted)
                    if pt is not None:
                        parts[code] = pt
                else:
                    results[code] = _arrays(store, client, code, session, live, count, adjusted, pointers.get(code))
            except KiwoomError as exc:
                missing[code] = f"{type(exc).__name__}: {exc}"
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if missing:
        log.warning("get_panel: %d of %d codes left out (see .attrs['missing'])", len(missing), len(code_list))
    built = False
    if hit is not None and hit.codes:
        results.update(_panel.arrays(hit))
        results = {c: results[c] for c in code_list if c in results}
    if use_panels and any(c not in hit_as_of(hit) for c in parts):
        # Stocks the panel could not serve for a reason a rebuild removes (none yet, moved on, too
        # shallow): publish a new panel of the whole request; it supersedes the old one.
        if hit is not None:
            for code in hit.codes:
                try:
                    sig = _panel.signature(store, code)
                    pt = _panel.part(sig, store.ensure(client, code, _d(session), count), _d(session), count,
                                     adjusted)
                except KiwoomError:
                    pt = None
                if pt is not None:
                    parts[code] = pt

        def reload(code: str, pend: np.datetime64):
            return _panel.part(_panel.signature(store, code), store.ensure(client, code, _d(session), count),
                               _d(session), count, adjusted, upto=pend)

        new = None
        parts = {c: parts[c] for c in code_list if c in parts}  # request order: then the answer is the file
        try:
            new = _panel.build(store, parts, _d(session), count, adjusted, reload,
                               carried=max(pt.carried for pt in parts.values()) if parts else 0)
        except (OSError, KiwoomError) as exc:  # only a speed-up: the answer is already complete
            log.info("finder: no panel written (%s)", exc)
        built = new is not None
        if new is not None and new[0].end == _d(session) and all(c in new[0].col for c in results):
            # The new panel holds exactly these bars: answer from its arrays in memory (cheaper than
            # assembling the per-stock rows a second time; they are this call's own, so no aliasing).
            fresh = _panel.Hit(new[0], list(results), new[1], set(), _d(session), count)
            return _finish(_panel.frames(fresh, fields), missing, session, live, fields, single,
                           {"served": len(served), "carried": carried, "per_stock": len(rest), "built": True})
    panels = _assemble(results, fields)
    return _finish(panels, missing, session, live, fields, single,
                   {"served": len(served), "carried": carried, "per_stock": len(rest), "built": built})


def hit_as_of(hit) -> set:
    return hit.as_of if hit is not None else set()


def _finish(panels: dict, missing: dict, session, live: bool, fields: list[str], single: bool, how: dict):
    for f in ("volume",):
        if f in panels:
            panels[f] = _int_where_complete(panels[f])
    for p in panels.values():
        p.attrs["missing"] = dict(missing)
        p.attrs["session"] = session
        p.attrs["live"] = live
        p.attrs["panel"] = dict(how)  # how it was served: from a stored panel, per stock, and whether one was written
    return panels[fields[0]] if single else panels


def _int_where_complete(frame: pd.DataFrame) -> pd.DataFrame:
    """Volume as int64 in every column with no missing value (NaN forces float64 elsewhere)."""
    gaps = np.isnan(frame.to_numpy()).any(axis=0) if frame.size else np.zeros(frame.shape[1], bool)
    if not gaps.any():
        return frame.astype("int64")
    if gaps.all():
        return frame
    out = pd.concat([frame.loc[:, ~gaps].astype("int64"), frame.loc[:, gaps]], axis=1)[frame.columns]
    out.attrs = dict(frame.attrs)
    return out


class _Pointers(dict):
    """Pointers read at most once per call (``get`` reads on first use), with the identity of the file
    each was read from (``stamped``, for carrying a panel forward)."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.stamps: dict[str, list[int] | None] = {}

    def get(self, code: str, default=None):  # noqa: D401 - dict API
        if code not in self:
            self[code], self.stamps[code] = self.store.index.read_stamped(code)
        return dict.get(self, code, default)

    def stamped(self, code: str) -> tuple[dict | None, list[int] | None]:
        ptr = self.get(code)
        return ptr, self.stamps.get(code)

    def pop(self, code: str, default=None):  # noqa: D401 - dict API
        self.stamps.pop(code, None)
        return dict.pop(self, code, default)


def _covered(store: Store, code: str, end: np.datetime64, count: int, pointers: "_Pointers") -> bool:
    hist = store._latest.get(code)
    if hist is not None and hist.covers(end, count):
        return True
    ptr = pointers.get(code)
    return ptr is not None and np.datetime64(ptr["anchor"], "D") >= end


def _assemble(results: dict[str, tuple], fields: list[str]) -> dict[str, pd.DataFrame]:
    codes = list(results)
    if codes:
        all_dates = np.unique(np.concatenate([r[0] for r in results.values()]))
    else:
        all_dates = np.array([], dtype="datetime64[D]")
    index = pd.DatetimeIndex(all_dates.astype("datetime64[ns]"), name="date")
    n, m = len(all_dates), len(codes)
    arrays = {f: np.full((n, m), np.nan) for f in fields}
    col = {"open": 0, "high": 1, "low": 2, "close": 3}
    for j, code in enumerate(codes):
        dates, prices, volume, value = results[code]
        rows = np.searchsorted(all_dates, dates)
        for f in fields:
            if f in col:
                arrays[f][rows, j] = prices[:, col[f]]
            elif f == "volume":
                arrays[f][rows, j] = volume
            else:
                arrays[f][rows, j] = value
    columns = pd.Index(codes, name="code")
    return {f: pd.DataFrame(arrays[f], index=index, columns=columns) for f in fields}
