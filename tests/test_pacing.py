"""Client pacing (finder/client/_ratelimit.py): a request woken late past its slot books a new one.

Unit tests on a virtual clock (in-process fakes of ``time.time``/``time.sleep``
only; the limiters themselves are the real ones, the file one with its real
slot file and lock).  A descheduled process that wakes up after its slot and
sends anyway bunches with the requests booked after it; these tests fail if
a late wake-up leaves at once.
"""

from __future__ import annotations

import types

import pytest

from finder.client import _ratelimit


class Clock:
    """Virtual time; ``oversleep`` seconds are added to the first ``late`` sleeps (a descheduled process)."""

    def __init__(self, late: int, oversleep: float) -> None:
        self.t, self.late, self.oversleep, self.sleeps = 1000.0, late, oversleep, []

    def time(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        extra = self.oversleep if self.late > 0 else 0.0
        self.late -= 1
        self.sleeps.append(s)
        self.t += s + extra


@pytest.fixture
def limiters(tmp_path):
    return {"memory": lambda rate: _ratelimit.MemoryRateLimiter(rate),
            "file": lambda rate: _ratelimit.FileRateLimiter(rate, tmp_path / "state")}


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_a_late_wake_up_books_a_new_slot_instead_of_bunching(kind, limiters, monkeypatch):
    clock = Clock(late=1, oversleep=0.08)
    monkeypatch.setattr(_ratelimit, "time", types.SimpleNamespace(time=clock.time, sleep=clock.sleep))
    lim = limiters[kind](10.0)                   # slots 0.1 s apart
    lim.acquire("ka10081")                       # t=1000.0, no wait
    # the next slot is 1000.1; the process oversleeps to 1000.18 (late by 0.8 interval)
    lim.acquire("ka10081")
    left = clock.t
    # it did not leave at 1000.18 (between the slots of 1000.1 and 1000.2): it took the slot 1000.2
    assert left == pytest.approx(1000.2), left
    assert len(clock.sleeps) == 2
    # the slot after it is still one interval later: nothing was double-booked
    lim.acquire("ka10081")
    assert clock.t == pytest.approx(1000.3)


def test_a_slightly_late_wake_up_leaves_and_repeated_lateness_never_starves(limiters, monkeypatch):
    clock = Clock(late=1, oversleep=0.02)         # late by 0.2 interval: within the tolerance
    monkeypatch.setattr(_ratelimit, "time", types.SimpleNamespace(time=clock.time, sleep=clock.sleep))
    lim = limiters["memory"](10.0)
    lim.acquire("x")
    lim.acquire("x")
    assert clock.t == pytest.approx(1000.12) and len(clock.sleeps) == 1
    # Always woken very late while others keep booking ahead: it leaves after MAX_REBOOKS re-bookings.
    clock.late, clock.oversleep = 100, 0.5
    booked = []

    def book() -> float:
        booked.append(clock.t + 0.1)
        return booked[-1]

    _ratelimit._paced(book, 10.0)
    assert len(booked) == _ratelimit.MAX_REBOOKS + 1


def test_the_stress_bench_departure_check_flags_a_burst_and_passes_even_pacing():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "stress.py"
    spec = importlib.util.spec_from_file_location("finder_bench_stress_check", path)
    stress = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stress)
    even = [("ka10081", 1000 + i / 16) for i in range(200)]           # 16/s against a 20/s limit
    assert stress.over_limit(even, 20.0) == {}
    burst = even + [("ka10081", 1000 + 100 / 16 + 0.001), ("ka10081", 1000 + 100 / 16 + 0.002)]
    assert stress.over_limit(burst, 20.0) == {"ka10081": 1}
    assert stress.over_limit([("au10001", 5.0)] * 3, 20.0) == {"au10001": 1}
