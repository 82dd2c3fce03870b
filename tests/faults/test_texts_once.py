"""No text twice, whatever the timing: a person's texts must not depend on whether the text
dispatch ran before or after the next case note was read.

Found by the long crash run (tests/faults/test_crashes.py): a person released today with three
booked appointments got three "day of release" texts, one naming each appointment in turn. The
day-of-release text names the first appointment still to come; once it had gone, the note that
the first appointment was attended made the second one "first", and a new text (a new reminder
key) went out, and again for the third. The uninterrupted run had read every note before its
dispatch ran and sent none. One release, one day-of-release text.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.notifications.consumer import apply_event
from consumers.notifications.dispatch import Dispatcher
from consumers.notifications.planner import Policy
from consumers.notifications.sender import OutboxBackend
from infra.config import Settings
from infra.database import make_engine, migrate
from infra.models.messages import OutboxMessage, Reminder
from schemas.envelope import Envelope
from tests.streams.factory import ev

PN = "A1234BC"
MOBILE = "+447700900123"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday, 10:00 in London


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'ttg.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def history(released_today: bool) -> tuple[list[Envelope], list[Envelope]]:
    """A person's story up to release day, and the notes that come after it."""
    before = [
        ev("release_date.changed", NOW - timedelta(days=30), pn=PN, new_date=NOW.date(),
           release_type="conditional_release"),
        ev("case_note.contact", NOW - timedelta(days=20), pn=PN, mobile=MOBILE,
           sms_consent=True),
    ]
    for n, when in enumerate((NOW + timedelta(hours=3), NOW + timedelta(days=7),
                              NOW + timedelta(days=14)), 1):
        before.append(ev("case_note.appointment", NOW - timedelta(days=5), pn=PN,
                         appointment_id=f"ap{n}", action="booked", kind="supervision", at=when,
                         place="Probation office, 1 High St", with_whom="Sam"))
    if released_today:
        before.append(ev("custody.release", NOW - timedelta(hours=2), pn=PN, prison="MDI"))
    after = [ev("case_note.appointment", NOW + timedelta(hours=5), pn=PN,
                appointment_id="ap1", action="attended", kind="supervision"),
             ev("case_note.appointment", NOW + timedelta(days=7, hours=2), pn=PN,
                appointment_id="ap2", action="missed", kind="supervision")]
    return before, after


def texts(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as s:
        rows = s.exec(select(Reminder.kind, Reminder.appointment_id).join(
            OutboxMessage, OutboxMessage.reminder_id == Reminder.id)).all()  # type: ignore[arg-type]
    return sorted((kind, appt or "-") for kind, appt in rows)


@pytest.mark.parametrize("released_today", [True, False], ids=["released", "due-today"])
def test_one_day_of_release_text_whenever_the_dispatch_runs(
    engine: Engine, released_today: bool,
) -> None:
    settings = Settings(_env_file=None, environment="test", sms_allow_list=[MOBILE],
                        database_url=str(engine.url))
    policy = Policy.from_settings(settings)
    clock = Clock()
    dispatcher = Dispatcher(engine, OutboxBackend(engine), settings, clock)

    def read(*events: Envelope) -> None:
        for e in events:
            with Session(engine) as session:
                apply_event(session, e, clock(), policy)
                session.commit()

    before, after = history(released_today)
    read(*before)
    if not released_today:  # released later in the morning
        clock.now = NOW + timedelta(minutes=30)
        read(ev("custody.release", clock.now, pn=PN, prison="MDI"))
    dispatcher.run_once()  # the welcome
    clock.now += timedelta(minutes=2)
    dispatcher.run_once()  # the day-of-release text, naming ap1
    sent = texts(engine)
    assert ("day_of_release", "ap1") in sent
    # Later that day the notes come in, the dispatch running between them.
    for note in after:
        clock.now += timedelta(minutes=1)
        read(note)
        dispatcher.run_once()
    day_of_release = [t for t in texts(engine) if t[0] == "day_of_release"]
    assert day_of_release == [("day_of_release", "ap1")], texts(engine)
