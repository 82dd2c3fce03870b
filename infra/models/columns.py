"""Column helpers every table module shares."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime


def as_utc(value: datetime | None) -> datetime | None:
    """Times are stored in UTC; SQLite hands them back naive, PostgreSQL aware."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ts(nullable: bool = True, index: bool = False) -> Column:  # type: ignore[type-arg]
    """A timezone-aware timestamp column."""
    return Column(DateTime(timezone=True), nullable=nullable, index=index)
