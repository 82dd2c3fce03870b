"""Handing "could not text …" work to the tasks area, when it is installed.

Every issue is first recorded in ``notification_issues`` (see :func:`store.record_issue`). When
the tasks area's store (``consumers.tasks.apply_alert_event``) and its tables exist, the issue is
also raised there as an alert for need ``text_contact``, so it becomes (or updates) one owned
task per person, routed like any other (by the person's local authority, else unrouted). It runs
in the caller's transaction inside a savepoint: if the tasks side fails, the issue is still
recorded here and the text's own state change is not lost.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session

from consumers.notifications.store import IssueSink
from infra.models.columns import as_utc
from infra.models.messages import NotificationIssue, NotifyPerson

log = logging.getLogger(__name__)

RULE_ID = "could_not_text"
NEED = "text_contact"
ISSUE_NAMESPACE = uuid.UUID("3b7c1f9e-5a0d-4e41-9b7e-2f6d8c4a1e55")


def task_sink(session: Session, issue: NotificationIssue) -> None:
    from consumers.tasks import apply_alert_event
    from infra.directory import read
    from schemas.common import Pathway, Severity, StaffRole
    from schemas.outputs import Alert, AlertEvent

    if issue.prison_number is None:
        return  # a reply from an unknown or shared number: the hub sees it in the issues list
    person = session.get(NotifyPerson, issue.prison_number)
    now = as_utc(issue.created_at)
    assert now is not None
    try:
        role = StaffRole(issue.owner_role)
    except ValueError:
        role = StaffRole.PROBATION_PRACTITIONER
    alert = Alert(
        alert_id=uuid.uuid5(ISSUE_NAMESPACE, f"{issue.prison_number}|{RULE_ID}"),
        prison_number=issue.prison_number, rule_id=RULE_ID, need=NEED,
        pathway=Pathway.ATTITUDES_THINKING_BEHAVIOUR, severity=Severity.WARNING,
        owner_role=role, due_at=now + timedelta(days=1), reason=issue.reason[:500],
        practice="Texts help people attend appointments [HMIP]; consent and opt-out honoured.",
        pre_release=False, prison=person.prison if person else None,
        local_authority=person.local_authority if person else None,
    )
    event = AlertEvent(event_id=uuid.uuid5(ISSUE_NAMESPACE, issue.issue_key), type="alert.raised",
                       occurred_at=now, alert=alert)
    try:
        with session.begin_nested():
            apply_alert_event(session, event, read(session), now, consumer="notifications")
    except Exception:  # noqa: BLE001 - the issue row stands; the task can be made by hand
        log.exception("could not raise a task for notification issue %s", issue.kind)


def default_issue_sink(engine: Engine) -> IssueSink | None:
    """The task sink if the tasks area (module and tables) is present, else None."""
    try:
        import consumers.tasks  # noqa: F401
    except ImportError:
        return None
    return task_sink if inspect(engine).has_table("tasks") else None
