from datetime import UTC, date, datetime

import pytest

from streams.calendar import ReleaseCalendar

CAL = ReleaseCalendar()


def test_bank_holidays_come_from_the_library() -> None:
    assert CAL.bank_holiday(date(2027, 3, 26)) == "Good Friday"
    assert CAL.bank_holiday(date(2026, 12, 28)) is not None  # Boxing Day (observed)
    assert not CAL.is_working_day(date(2026, 12, 26))
    assert CAL.is_working_day(date(2026, 12, 24))


@pytest.mark.parametrize(("day", "expected"), [
    (date(2026, 12, 11), True),  # Friday
    (date(2026, 12, 10), False),  # Thursday
    (date(2026, 12, 24), True),  # Thursday before Christmas Day (Friday)
    (date(2027, 3, 25), True),  # Thursday before Good Friday 2027
    (date(2027, 4, 1), False),  # an ordinary Thursday
    (date(2026, 12, 12), True),  # Saturday: released on the Friday
    (date(2026, 12, 31), True),  # before New Year's Day 2027 (Friday)
])
def test_friday_or_pre_holiday(day: date, expected: bool) -> None:
    assert CAL.is_friday_or_pre_holiday_release(day) is expected


@pytest.mark.parametrize(("day", "suggested"), [
    (date(2026, 12, 11), date(2026, 12, 9)),  # Fri -> Wed
    (date(2026, 12, 24), date(2026, 12, 22)),  # Thu before Christmas -> Tue
    (date(2027, 3, 25), date(2027, 3, 23)),  # Thu before Good Friday -> Tue
    (date(2026, 12, 31), date(2026, 12, 29)),  # skips the Boxing Day holiday (28th)
    (date(2026, 12, 13), date(2026, 12, 9)),  # Sunday -> Friday -> Wed
    (date(2026, 12, 10), None),  # Thursday before a working Friday: nothing to move
])
def test_earliest_lawful_release_day(day: date, suggested: date | None) -> None:
    assert CAL.earliest_lawful_release_day(day) == suggested


def test_local_time_follows_daylight_saving() -> None:
    assert CAL.at(date(2026, 7, 1), 17).astimezone(UTC).hour == 16
    assert CAL.at(date(2026, 12, 1), 17).astimezone(UTC).hour == 17
    assert CAL.local_date(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == date(2026, 7, 1)
