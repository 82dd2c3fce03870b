"""Where "now" comes from. The worker never calls ``datetime.now`` itself, so tests and replays
control time; ``replay`` clocks also say which alerts are history rather than work to do."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from schemas.envelope import utcnow


class Clock(Protocol):
    #: A replay re-runs the past: alerts whose due moment is before the wall clock are history.
    replay: bool

    def now(self) -> datetime: ...

    def observe(self, moment: datetime) -> None:
        """Told each event's ``occurred_at``; only replay clocks care."""


class WallClock:
    replay = False

    def now(self) -> datetime:
        return utcnow()

    def observe(self, moment: datetime) -> None:
        pass


class FixedClock:
    """Stands still until moved: for tests."""

    def __init__(self, at: datetime, replay: bool = False) -> None:
        self._at = at
        self.replay = replay

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, by: timedelta) -> None:
        self._at += by

    def observe(self, moment: datetime) -> None:
        pass


class OffsetClock:
    """The wall clock shifted to start at ``start``; time then flows normally (demos, drills)."""

    def __init__(self, start: datetime, replay: bool = False) -> None:
        self._offset = start - utcnow()
        self.replay = replay

    def now(self) -> datetime:
        return utcnow() + self._offset

    def observe(self, moment: datetime) -> None:
        pass


class EventTimeClock:
    """Replays: "now" is the latest ``occurred_at`` seen, so rules fire as they would have."""

    replay = True

    def __init__(self, start: datetime | None = None) -> None:
        self._at = start

    def now(self) -> datetime:
        return self._at or utcnow()

    def observe(self, moment: datetime) -> None:
        if self._at is None or moment > self._at:
            self._at = moment
