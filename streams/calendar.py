"""Working days in England and Wales, in local time.

Bank holidays come from the maintained ``holidays`` library, never a hand-typed list. Releases are
planned in local dates (Europe/London by default), so every rule asks this calendar what "today"
and "5 pm on the day before release" mean, DST included.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

#: The Offenders (Day of Release from Detention) Act 2023 lets a release due on a Friday or the
#: day before a bank holiday be brought forward by up to two working days.
LAWFUL_EARLIER_WORKING_DAYS = 2


class ReleaseCalendar:
    """Weekends and England & Wales bank holidays, and local-time helpers."""

    def __init__(self, timezone: str = "Europe/London") -> None:
        self.tz = ZoneInfo(timezone)
        self._holidays = holidays.country_holidays("GB", subdiv="ENG")
        # The sweep asks the same few dates for every person; the library's lookup is not cheap.
        self._working: dict[date, bool] = {}
        #: The last (state, now, situation) worked out, shared by the rules of one evaluation.
        self.memo: tuple[object, datetime, object] | None = None

    # ------------------------------------------------------------------ days

    def bank_holiday(self, d: date) -> str | None:
        """The holiday's name, or ``None`` on an ordinary day."""
        return self._holidays.get(d)

    def is_working_day(self, d: date) -> bool:
        known = self._working.get(d)
        if known is None:
            known = d.weekday() < 5 and d not in self._holidays
            self._working[d] = known
        return known

    def previous_working_day(self, d: date) -> date:
        d -= timedelta(days=1)
        while not self.is_working_day(d):
            d -= timedelta(days=1)
        return d

    def next_working_day(self, d: date) -> date:
        d += timedelta(days=1)
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    def effective_release_day(self, d: date) -> date:
        """A release due on a weekend or bank holiday happens on the working day before."""
        return d if self.is_working_day(d) else self.previous_working_day(d)

    def is_last_working_day_before_break(self, d: date) -> bool:
        """A Friday, or any working day followed by a weekend or bank holiday."""
        return self.is_working_day(d) and not self.is_working_day(d + timedelta(days=1))

    def is_friday_or_pre_holiday_release(self, d: date) -> bool:
        """Whether a release due on ``d`` actually happens just before a break (weekend dates
        count, since they move to the Friday)."""
        return self.is_last_working_day_before_break(self.effective_release_day(d))

    def earliest_lawful_release_day(self, d: date) -> date | None:
        """The day to suggest instead of a Friday / pre-holiday release, or ``None`` if none.

        Up to two working days earlier (2023 Act). Prefer the earliest such day that is not
        itself the last day before a break (Christmas week can have two in a row); else the
        earliest.
        """
        day = self.effective_release_day(d)
        if not self.is_last_working_day_before_break(day):
            return None
        window: list[date] = []
        for _ in range(LAWFUL_EARLIER_WORKING_DAYS):
            day = self.previous_working_day(day)
            window.append(day)
        window.reverse()  # earliest first
        for candidate in window:
            if not self.is_last_working_day_before_break(candidate):
                return candidate
        return window[0]

    # ------------------------------------------------------------------ local time

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def at(self, d: date, hour: int, minute: int = 0) -> datetime:
        """An aware moment at local wall-clock time on ``d``."""
        return datetime.combine(d, time(hour, minute), tzinfo=self.tz)
