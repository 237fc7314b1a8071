"""Injected faults: the ways the real Kiwoom server misbehaves, on demand.

A fault is armed with a ``count`` (the next N matching requests) and/or a
``probability`` (each matching request, drawn from a seeded generator so runs
repeat), optionally for one ``api_id``.  With neither, ``count=1``.  Faults
can be armed at start and while the simulator runs; every firing is counted.

Kinds (``KINDS``) and where they apply:

* transport faults, any API operation (token calls included):
  ``http_error`` (HTTP 5xx; ``status`` fixes it, else 500, 502, 503 in turn),
  ``slow`` (answer after ``seconds``, default 1.0),
  ``drop`` (headers and part of the body, then the connection closes; the
  in-process transport raises ``httpx.RemoteProtocolError``),
  ``maintenance`` (HTTP 200 with an HTML 점검 page),
  ``rate_storm`` (HTTP 429 / return_code 5 / 1700 whatever the rate);
* ``token_invalidate``: on a continuation request (``cont-yn: Y``) of an
  authenticated operation, the caller's token is superseded as if another
  process had logged in, and the answer is return_code 3 / 8005;
* page faults, on ka10081 / ka10099: ``empty_page`` (an empty list with
  ``cont-yn: Y``), ``repeat_key`` (``next-key`` echoes the request's key, so a
  walk that does not remember keys never ends);
* row faults, on ka10081 / ka10099 / ka10095: ``blank_rows`` (every row's
  fields become empty strings), ``extra_fields`` (rows carry unknown keys).

Not guaranteed: a fault that does not apply to a request neither fires nor
uses up its count.
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .._models import API_DAILY, API_QUOTES, API_STOCK_LIST

TRANSPORT_KINDS = ("http_error", "slow", "drop", "maintenance", "rate_storm")
PAGE_KINDS = ("empty_page", "repeat_key")
ROW_KINDS = ("blank_rows", "extra_fields")
KINDS = TRANSPORT_KINDS + ("token_invalidate",) + PAGE_KINDS + ROW_KINDS

PAGED_APIS = (API_DAILY, API_STOCK_LIST)
ROW_APIS = (API_DAILY, API_STOCK_LIST, API_QUOTES)
EXTRA_FIELDS = {"upd_rt": "+0.00", "bic_inds_tp": "", "pred_close_pric": "0", "zz_new_field": "sim"}
MAINTENANCE_HTML = (
    "<!DOCTYPE html><html lang=\"ko\"><head><meta charset=\"utf-8\"><title>시스템 점검 안내</title></head>"
    "<body><h1>시스템 점검 중입니다</h1><p>보다 나은 서비스를 위해 시스템 점검을 진행하고 있습니다. "
    "점검 시간 동안 서비스 이용이 제한됩니다.</p></body></html>"
)


@dataclass
class Fault:
    kind: str
    count: int | None = None
    probability: float | None = None
    api_id: str | None = None
    status: int | None = None      # http_error
    seconds: float = 1.0           # slow
    fired: int = 0
    id: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def applies(kind: str, api_id: str, *, continuation: bool, authenticated: bool) -> bool:
    if kind in TRANSPORT_KINDS:
        return True
    if kind == "token_invalidate":
        return continuation and authenticated
    if kind in PAGE_KINDS:
        return api_id in PAGED_APIS
    return api_id in ROW_APIS


class Faults:
    """The armed faults of one simulator; thread-safe."""

    def __init__(self, faults: Any = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)
        self._status_cycle = itertools.cycle((500, 502, 503))
        for spec in faults or ():
            if isinstance(spec, Fault):
                self.add(**{k: v for k, v in spec.to_dict().items() if k not in ("fired", "id")})
            elif isinstance(spec, str):
                self.add(spec)
            else:
                self.add(**spec)

    def add(self, kind: str, count: int | None = None, probability: float | None = None,
            api_id: str | None = None, *, status: int | None = None, seconds: float = 1.0) -> Fault:
        """Arm a fault; returns it (its ``fired`` counter moves as it fires)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise ValueError(f"count={count!r} must be a whole number >= 0")
        if probability is not None and not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"probability={probability!r} must lie in [0, 1]")
        if status is not None and not 500 <= int(status) <= 599:
            raise ValueError(f"status={status!r} must be a 5xx code")
        if count is None and probability is None:
            count = 1
        fault = Fault(kind, count, None if probability is None else float(probability), api_id,
                      None if status is None else int(status), float(seconds), id=next(self._ids))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, kind: str | None = None) -> int:
        """Disarm every fault (or every fault of ``kind``); returns how many were disarmed."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if kind is not None and f.kind != kind]
            return before - len(self._faults)

    def active(self) -> list[dict]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def draw(self, api_id: str, *, continuation: bool, authenticated: bool) -> dict[str, Fault]:
        """The faults that fire on this request, by kind (each kind at most once)."""
        fired: dict[str, Fault] = {}
        with self._lock:
            for f in self._faults:
                if f.kind in fired or (f.api_id is not None and f.api_id != api_id):
                    continue
                if not applies(f.kind, api_id, continuation=continuation, authenticated=authenticated):
                    continue
                if f.count is not None and f.count <= 0:
                    continue
                if f.probability is not None and self._rng.random() >= f.probability:
                    continue
                if f.count is not None:
                    f.count -= 1
                f.fired += 1
                fired[f.kind] = f
            self._faults = [f for f in self._faults if f.count is None or f.count > 0]
        return fired

    def status_for(self, fault: Fault) -> int:
        if fault.status is not None:
            return fault.status
        with self._lock:
            return next(self._status_cycle)
