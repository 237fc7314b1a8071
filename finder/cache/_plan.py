"""The cache planner: which walks a stock's history needs for a request.  Pure: no I/O.

A history is described by its *spec*, a tuple of :class:`WalkRef`:
``spec[0]`` is the raw walk, ``spec[1]`` the adjusted reference, then
extensions (later walks or quote bars whose rows are appended) and priors
(earlier adjusted references kept after a corporate action).

:func:`plan` decides, from what is cached and what is asked:

* nothing cached: a raw and an adjusted walk at the newest final session,
  deep enough for ``count`` bars on or before ``end``;
* newer sessions needed: first a forward adjusted walk (returned as a
  :class:`Fetch` step; the caller fetches it and plans again with it).  If its
  overlap row equals ours, no action happened and it is appended; otherwise a
  new adjusted reference replaces the old one (which becomes a prior);
* older rows needed: a deeper pair at the same anchor.

Guarantee (tested as a property over random histories): the spec returned
by a :class:`Use` step yields a history that covers ``count`` bars on or
before ``end`` (or every bar, when the stock's start is reached), on every
branch, after an action included.  :func:`compacted` folds a spec's raw walk
and extensions into one raw walk (built from the history itself), so a spec
stays short however many sessions it is extended by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from .._models import DAILY_PAGE_SIZE

KINDS = ("raw", "adj", "prior", "quote")


class WalkRef(NamedTuple):
    """One part of a history: a ka10081 walk (``raw`` / ``adj`` / ``prior``) or a ka10095 bar (``quote``)."""

    kind: str
    base_dt: str     # YYYY-MM-DD, a final session
    depth: int

    @classmethod
    def of(cls, item) -> "WalkRef":
        kind, base_dt, depth = item
        if kind not in KINDS:
            raise ValueError(f"unknown walk kind {kind!r}")
        return cls(str(kind), str(base_dt), int(depth))


Spec = tuple  # tuple[WalkRef, ...]


def spec_of(items) -> Spec:
    """A spec from its stored form (lists from a pointer's JSON)."""
    return tuple(WalkRef.of(i) for i in items)


def key(spec: Spec) -> tuple:
    """The plain-tuple form joblib hashes (unchanged since before ``WalkRef``, so old entries stay valid)."""
    return tuple((str(r[0]), str(r[1]), int(r[2])) for r in spec)


@dataclass(frozen=True)
class Fetch:
    """Fetch this walk, then call :func:`plan` again with it as ``forward``."""

    ref: WalkRef


@dataclass(frozen=True)
class Use:
    """The spec of the history that answers the request."""

    spec: Spec
    action: bool = False   # a corporate action after the old anchor was found


def pages(rows: int) -> int:
    """Rows rounded up to whole pages: a page costs one request whether it holds 1 row or 600."""
    return max(1, -(-rows // DAILY_PAGE_SIZE)) * DAILY_PAGE_SIZE


def _day(d) -> str:
    return str(np.datetime64(d, "D"))


def plan(history, spec: Spec | None, end: np.datetime64, count: int, newest: np.datetime64,
         gap: Callable[[np.datetime64, np.datetime64], int], forward=None):
    """The next step towards a history covering ``count`` bars on or before ``end``.

    ``history``/``spec``: what is cached (None for nothing); ``newest``: the
    newest final session; ``gap(a, b)``: sessions in ``(a, b]``; ``forward``:
    the walk a previous :class:`Fetch` asked for.  Returns :class:`Fetch` or
    :class:`Use`.
    """
    target = max(end, newest)
    if history is None or not spec:
        depth = pages(count + gap(end, target))
        return Use((WalkRef("raw", _day(target), depth), WalkRef("adj", _day(target), depth)))
    base_depth = int(spec[0].depth)
    fresh_depth = pages(max(base_depth, count + gap(end, target)))
    if end > history.anchor:
        last = history.last_row if history.last_row is not None else history.anchor
        k = max(gap(last, target), 1)  # new sessions; the walk adds our last row to compare
        ref = WalkRef("adj", _day(target), k + 1)
        if forward is None:
            return Fetch(ref)
        new = forward.dates[forward.dates > last]
        rows_to_end = history.rows_on_or_before(end) + int((new <= end).sum())
        enough = history.reached_start or rows_to_end >= count
        if adds_no_action(history, forward):
            if enough:
                return Use(tuple(spec) + (ref,))
            return Use((WalkRef("raw", _day(target), fresh_depth), WalkRef("adj", _day(target), fresh_depth)))
        if not enough:
            # A new reference as deep as the old one would leave the request short: a fresh, deeper pair.
            return Use((WalkRef("raw", _day(target), fresh_depth), WalkRef("adj", _day(target), fresh_depth)),
                       action=True)
        # The forward walk's newest row is raw (nothing lies after it); older new rows need a raw walk.
        if len(new) == 1 and new[0] == target:
            extension = ref
        else:
            extension = WalkRef("raw", _day(target), k + 1)
        return Use(new_reference(spec, _day(target), extension), action=True)
    # Older rows needed: a deeper pair at the newest anchor we already trust.
    anchor = history.anchor
    depth = pages(max(count + gap(end, anchor), base_depth + DAILY_PAGE_SIZE))
    return Use((WalkRef("raw", _day(anchor), depth), WalkRef("adj", _day(anchor), depth)))


def adds_no_action(history, forward) -> bool:
    from ._history import adds_no_action as _check

    return _check(history, forward)


def new_reference(spec: Spec, target: str, extension: WalkRef) -> Spec:
    """A spec with a fresh adjusted reference at ``target`` and ``extension`` appended.

    The new reference is as deep as the old one (so a 600-row history costs
    one page, not two), and the old reference stays as a *prior*: the actions
    older than the new reference's first row are read from it.
    """
    old_ref = spec[1]
    prior = WalkRef("prior", old_ref.base_dt, old_ref.depth)
    rest = tuple(e for e in spec[2:] if e.kind != "prior")
    priors = tuple(e for e in spec[2:] if e.kind == "prior")
    return (spec[0], WalkRef("adj", target, int(old_ref.depth))) + rest + (extension,) + priors + (prior,)


def extensions(spec: Spec) -> tuple:
    return tuple(e for e in spec[2:] if e.kind != "prior")


def compacted(spec: Spec, anchor: np.datetime64, rows: int) -> Spec:
    """The same history with its raw walk and extensions folded into one raw walk of ``rows`` rows at ``anchor``.

    The caller stores that raw walk from the history's own raw rows (final
    bars never change, so it is exactly what Kiwoom returns for that walk).
    Returns ``spec`` itself when there is nothing to fold.
    """
    if not extensions(spec):
        return spec
    priors = tuple(e for e in spec[2:] if e.kind == "prior")
    return (WalkRef("raw", _day(anchor), int(rows)), spec[1]) + priors
