"""Quiet hours in local time (``settings.timezone``, Europe/London): no texts at night.

Rule: a text due inside quiet hours moves to the end of them (the next morning); if that is
after its ``latest`` useful moment (e.g. 30 minutes before the appointment) it is skipped
(``None``). Wall-clock times are resolved in the zone, so the rule holds across BST/GMT changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from infra.config import Settings


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class QuietHours:
    start: time  # e.g. 21:00
    end: time  # e.g. 08:00
    tz: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings) -> QuietHours:
        return cls(parse_hhmm(settings.quiet_hours_start), parse_hhmm(settings.quiet_hours_end),
                   ZoneInfo(settings.timezone))

    def is_quiet(self, at: datetime) -> bool:
        local = at.astimezone(self.tz).time()
        if self.start == self.end:
            return False
        if self.start > self.end:  # spans midnight
            return local >= self.start or local < self.end
        return self.start <= local < self.end

    def next_allowed(self, at: datetime) -> datetime:
        """``at`` itself if allowed, else the end of this stretch of quiet hours (UTC)."""
        if not self.is_quiet(at):
            return at.astimezone(UTC)
        local = at.astimezone(self.tz)
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)
        end = datetime.combine(day, self.end, tzinfo=self.tz)
        return end.astimezone(UTC)

    def shift(self, at: datetime, latest: datetime | None) -> datetime | None:
        """When to send a text due ``at``: moved out of quiet hours, or ``None`` if pointless."""
        moved = self.next_allowed(at)
        if latest is not None and moved > latest:
            return None
        return moved
