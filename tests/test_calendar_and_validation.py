"""Unit tests: the KRX calendar, FINDER_NOW, KST token expiry and argument checks."""

import datetime as dt

import pandas as pd
import pytest

from finder import calendar
from finder._exceptions import InvalidInputError
from finder import _validate
from finder.client._token import Token, parse_expires_dt


def test_known_holidays_and_sessions():
    assert not calendar.is_session("2025-06-03")  # election day
    assert not calendar.is_session("2025-05-01")  # May 1
    assert calendar.is_session("2025-06-04")
    assert calendar.previous_session("2025-06-04") == pd.Timestamp("2025-06-02")
    assert calendar.session_on_or_before("2025-06-03") == pd.Timestamp("2025-06-02")
    assert calendar.next_session("2025-06-02") == pd.Timestamp("2025-06-04")
    days = calendar.sessions_in_range("2025-05-28", "2025-06-05")
    assert pd.Timestamp("2025-06-03") not in days and len(days) == calendar.sessions_between_count("2025-05-28", "2025-06-05")


@pytest.mark.parametrize("value", ["20251001", "2025-10-01", dt.date(2025, 10, 1), pd.Timestamp("2025-10-01"),
                                   dt.datetime(2025, 10, 1, 15, 0)])
def test_parse_date_accepts_every_documented_form(value):
    assert calendar.parse_date(value) == pd.Timestamp("2025-10-01")


@pytest.mark.parametrize("value", ["2025/10/01", "20251301", "2025-02-30", "yesterday", "", 20251001, None, True, 3.5])
def test_parse_date_refuses_others_naming_the_value(value):
    with pytest.raises(InvalidInputError) as err:
        calendar.parse_date(value, "base_dt")
    assert "base_dt" in str(err.value)


def test_finder_now_moves_every_decision(monkeypatch):
    monkeypatch.setenv("FINDER_NOW", "2025-11-28T20:30+09:00")
    assert calendar.today() == pd.Timestamp("2025-11-28")
    assert calendar.latest_final_session() == pd.Timestamp("2025-11-28")
    assert calendar.live_session() is None
    monkeypatch.setenv("FINDER_NOW", "2025-11-28T10:00+09:00")
    assert calendar.live_session() == pd.Timestamp("2025-11-28")
    assert calendar.latest_final_session() == pd.Timestamp("2025-11-27")
    assert calendar.state() == (pd.Timestamp("2025-11-28"), pd.Timestamp("2025-11-28"), pd.Timestamp("2025-11-27"))
    monkeypatch.setenv("FINDER_LIVE_CUTOFF", "09:30")
    assert calendar.live_session() is None and calendar.latest_final_session() == pd.Timestamp("2025-11-28")
    # 01:30 UTC on the 29th is 10:30 KST on a Saturday: no live bar, Friday is final.
    monkeypatch.delenv("FINDER_LIVE_CUTOFF")
    monkeypatch.setenv("FINDER_NOW", "2025-11-29T01:30:00+00:00")
    assert calendar.today() == pd.Timestamp("2025-11-29")
    assert calendar.live_session() is None and calendar.latest_final_session() == pd.Timestamp("2025-11-28")


def test_expires_dt_is_kst_not_machine_time(monkeypatch):
    exp = parse_expires_dt("20251129203000")
    assert exp.utcoffset() == dt.timedelta(hours=9)
    assert exp.astimezone(dt.timezone.utc) == dt.datetime(2025, 11, 29, 11, 30, tzinfo=dt.timezone.utc)
    # On a UTC host at 11:00 UTC the token has 30 minutes left: fresh (renewal margin is 5 min).
    # Lifetimes are wall-clock time, not FINDER_NOW (issue 10 item 7; more in tests/test_client_state.py).
    issued = exp.timestamp() - 24 * 3600
    assert Token("t", exp, issued=issued).fresh(now=exp.timestamp() - 30 * 60)
    assert not Token("t", exp, issued=issued).fresh(now=exp.timestamp() - 3 * 60)  # inside the margin
    assert "t" not in repr(Token("secret-token-value", exp)).replace("Token", "")


@pytest.mark.parametrize("code", ["005930", "069500", "005930_NX", "005930_AL", "0004V0", " 005930 "])
def test_valid_codes(code):
    assert _validate.code(code) == code.strip()


@pytest.mark.parametrize("code", ["5930", "0059300", "ABCDEF", "005930_XX", "KRX:005930", 5930, None, "", "005930|000660"])
def test_invalid_codes_name_the_value(code):
    with pytest.raises(InvalidInputError) as err:
        _validate.code(code)
    assert repr(code) in str(err.value)


@pytest.mark.parametrize("count", [0, -5, 10_001, 1.5, "220", True, None])
def test_invalid_counts(count):
    with pytest.raises(InvalidInputError):
        _validate.count(count)


def test_future_dates_are_refused(monkeypatch):
    monkeypatch.setenv("FINDER_NOW", "2025-11-28T20:30+09:00")
    assert _validate.base_dt("2025-11-28") == pd.Timestamp("2025-11-28")
    with pytest.raises(InvalidInputError, match="future"):
        _validate.base_dt("2025-11-29")
