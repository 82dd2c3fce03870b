"""Database side of notifications: facts in, plans applied, issues recorded.

Everything here runs inside the caller's session (one transaction), so a consumer can store the
processed event id in the same commit as the change it caused.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from consumers.notifications.planner import (
    AppointmentFacts,
    PersonFacts,
    PlannedReminder,
    Policy,
    plan,
)
from infra.models.columns import as_utc
from infra.models.messages import (
    CustodyState,
    NotificationIssue,
    NotifyAppointment,
    NotifyPerson,
    Reminder,
    ReminderHistory,
    ReminderState,
)

log = logging.getLogger(__name__)

#: Who gets "could not text …" work when an appointment names no owner.
DEFAULT_OWNER_ROLE = "probation_practitioner"

#: ``(session, issue) -> None``: extra place to put an issue (e.g. the tasks store); see
#: :func:`record_issue`. The lead can pass one in when the task store offers an insert function.
IssueSink = Callable[[Session, NotificationIssue], None]


def person(session: Session, prison_number: str, now: datetime) -> NotifyPerson:
    row = session.get(NotifyPerson, prison_number)
    if row is None:
        row = NotifyPerson(prison_number=prison_number, updated_at=now)
        session.add(row)
    return row


def facts_for(session: Session, prison_number: str,
              tz: str = "Europe/London") -> PersonFacts | None:
    row = session.get(NotifyPerson, prison_number)
    if row is None:
        return None
    appts = session.exec(
        select(NotifyAppointment).where(NotifyAppointment.prison_number == prison_number)
    ).all()
    return PersonFacts(
        release_text_sent_on=release_text_sent_on(session, prison_number, tz),
        prison_number=prison_number,
        mobile_e164=None if row.mobile_invalid else row.mobile_e164,
        sms_consent=row.sms_consent,
        opted_out=row.opted_out,
        custody=CustodyState(row.custody),
        release_date=row.release_date,
        released_at=as_utc(row.released_at),
        appointments=tuple(
            AppointmentFacts(a.appointment_id, a.kind, a.status, as_utc(a.at), a.place,
                             a.with_whom, as_utc(a.told_for))
            for a in appts
        ),
    )


def release_text_sent_on(session: Session, prison_number: str, tz: str) -> date | None:
    """Local date of the latest day-of-release text that went, or may have gone (being sent,
    or failed with its outcome unknown), to the person; None if none did."""
    from consumers.notifications.planner import DAY_OF_RELEASE

    rows = session.exec(
        select(Reminder).where(Reminder.prison_number == prison_number,
                               Reminder.audience == "person", Reminder.kind == DAY_OF_RELEASE)
    ).all()
    went = [as_utc(r.sent_at or r.request_started_at or r.claimed_at) for r in rows
            if r.state in (ReminderState.SENT.value, ReminderState.SENDING.value)
            or (r.state == ReminderState.FAILED.value and r.request_started_at is not None)]
    moments = [m for m in went if m is not None]
    return max(moments).astimezone(ZoneInfo(tz)).date() if moments else None


def history(session: Session, reminder: Reminder, now: datetime, source: str,
            detail: str | None = None) -> None:
    session.add(ReminderHistory(reminder_id=reminder.id, at=now, source=source,
                                state=reminder.state, delivery_status=reminder.delivery_status,
                                detail=detail[:500] if detail else None))


@dataclass
class PlanResult:
    created: int = 0
    moved: int = 0
    cancelled: int = 0


def apply_plan(session: Session, prison_number: str, planned: dict[str, PlannedReminder],
               now: datetime, reason: str = "plan") -> PlanResult:
    """Make this person's reminders match ``planned``; texts already sent are never touched."""
    result = PlanResult()
    existing = {
        r.idempotency_key: r
        for r in session.exec(
            select(Reminder).where(Reminder.prison_number == prison_number,
                                   Reminder.audience == "person")
        ).all()
    }
    for key, row in existing.items():
        want = planned.get(key)
        state = ReminderState(row.state)
        if want is None:
            if state is ReminderState.SCHEDULED:
                row.state, row.updated_at = ReminderState.CANCELLED.value, now
                history(session, row, now, "planner", f"cancelled: {reason}")
                result.cancelled += 1
            continue
        if state is ReminderState.CANCELLED:
            # Wanted again (re-booked, or START after STOP): the same key comes back to life.
            row.state, row.attempts, row.next_attempt_at = ReminderState.SCHEDULED.value, 0, None
            _set_time(row, want, now)
            history(session, row, now, "planner", f"scheduled again: {reason}")
            result.created += 1
        elif state is ReminderState.SCHEDULED and (
            _moved(as_utc(row.send_at), want.send_at, now) or row.body != want.body
            or as_utc(row.expires_at) != want.expires_at
        ):
            _set_time(row, want, now)
            history(session, row, now, "planner", f"rescheduled: {reason}")
            result.moved += 1
    for key, want in planned.items():
        if key in existing:
            continue
        row = Reminder(
            id=str(uuid.uuid4()), idempotency_key=key, audience="person",
            prison_number=prison_number, appointment_id=want.appointment_id, kind=want.kind,
            state=ReminderState.SCHEDULED.value, send_at=want.send_at,
            expires_at=want.expires_at, body=want.body, created_at=now, updated_at=now,
        )
        session.add(row)
        session.flush()
        history(session, row, now, "planner", f"scheduled: {reason}")
        result.created += 1
    return result


def _moved(current: datetime | None, wanted: datetime, now: datetime) -> bool:
    # "Due now" re-planned a minute later is still due now: not a move worth a history row.
    if current is not None and current <= now and wanted <= now:
        return False
    return current != wanted


def _set_time(row: Reminder, want: PlannedReminder, now: datetime) -> None:
    row.send_at, row.expires_at, row.body, row.updated_at = (
        want.send_at, want.expires_at, want.body, now)
    row.next_attempt_at = None


def replan(session: Session, prison_number: str, now: datetime, policy: Policy,
           reason: str = "plan") -> PlanResult:
    facts = facts_for(session, prison_number, policy.tz)
    if facts is None:
        return PlanResult()
    result = apply_plan(session, prison_number, plan(facts, now, policy), now, reason)
    log.info("planned reminders for person %s: %d new, %d moved, %d cancelled (%s)",
             prison_number, result.created, result.moved, result.cancelled, reason)
    return result


def lift_deferrals(session: Session, prison_number: str, now: datetime) -> int:
    """Make this person's deferred texts due again at once (after a release is recorded, the
    "still in custody" wait is over). Only deferrals: a text waiting to retry after a failed
    send (``attempts`` > 0) keeps its backoff. Dispatch checks every rule again anyway (quiet
    hours, welcome first, ...), so lifting a deferral never sends a text early."""
    rows = session.exec(select(Reminder).where(
        Reminder.prison_number == prison_number, Reminder.audience == "person",
        Reminder.state == ReminderState.SCHEDULED.value, Reminder.attempts == 0,
        Reminder.next_attempt_at.is_not(None),  # type: ignore[union-attr]
        Reminder.next_attempt_at > now,  # type: ignore[operator]
    )).all()
    for row in rows:
        row.next_attempt_at, row.updated_at = None, now
    return len(rows)


def owner_role_for(session: Session, reminder: Reminder | None) -> str:
    if reminder is not None and reminder.appointment_id and reminder.prison_number:
        appt = session.get(NotifyAppointment, (reminder.prison_number, reminder.appointment_id))
        if appt is not None and appt.owner_role:
            return appt.owner_role
    return DEFAULT_OWNER_ROLE


def record_issue(session: Session, *, key: str, prison_number: str | None, kind: str,
                 reason: str, now: datetime, reminder: Reminder | None = None,
                 owner_role: str | None = None, sink: IssueSink | None = None) -> bool:
    """Record work for a person to do (once per ``key``). Returns False if already recorded.

    Issues live in ``notification_issues``; ``sink`` (if given) also hands each new issue to
    another store, such as the tasks table, in the same transaction.
    """
    if session.exec(select(NotificationIssue).where(NotificationIssue.issue_key == key)).first():
        return False
    issue = NotificationIssue(
        issue_key=key[:200], prison_number=prison_number,
        owner_role=owner_role or owner_role_for(session, reminder), kind=kind,
        reason=reason[:500], reminder_id=reminder.id if reminder else None, created_at=now,
    )
    session.add(issue)
    session.flush()
    if sink is not None:
        sink(session, issue)
    log.info("notification issue %s for person %s (owner %s)", kind, prison_number,
             issue.owner_role)
    return True


def shares_number(session: Session, prison_number: str, e164: str) -> bool:
    """True if another person on record has the same mobile (a shared phone is not texted)."""
    other = session.exec(
        select(NotifyPerson.prison_number).where(NotifyPerson.mobile_e164 == e164,
                                                 NotifyPerson.prison_number != prison_number)
    ).first()
    return other is not None
