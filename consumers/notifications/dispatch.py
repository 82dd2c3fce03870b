"""Sending due texts with exactly-once effect.

State machine of a ``sms_reminders`` row::

    scheduled -> sending -> sent | failed | skipped          (and scheduled -> cancelled)
                  |  ^
                  +--+  transient failure: back to scheduled with a later next_attempt_at

Steps for one row, each its own commit:
1. *claim*: ``UPDATE … SET state='sending' WHERE id=? AND state='scheduled'``; only the process
   whose update hit one row goes on (any number of dispatchers may run);
2. *checks* (consent, opt-out, custody, quiet hours, shared number, allow-list, welcome first);
   then ``request_started_at`` is committed: from here on Twilio may have seen the request;
3. the HTTP call; then SID, status and ``sent`` are committed together.

Restart rule (:meth:`Dispatcher.reconcile`), for a row left in ``sending`` longer than any send
can take: with a SID, look it up and mark it sent; with no ``request_started_at``, the request was
never made, so it goes back to ``scheduled``; with ``request_started_at`` but no SID, ask the
provider for a message to that number with that body since then (``find_sent``): found -> sent
with that SID; not found -> **failed, "outcome unknown", never re-sent**, and an issue asks the
owner to check with the person. A duplicate text is worse than a missing one we report. The same
check runs before retrying after any failure that may have reached Twilio (a timeout, a broken
connection, a 5xx); only a 429 or another 4xx answer is retried without looking.

Failures of the provider or of the database are counted by kind in each :class:`DispatchReport`
(``errors``) and in ``Dispatcher.totals`` across runs, and logged. A lookup that fails (Twilio
still erroring) puts the text back for a later retry; it is never sent blind. A database that
cannot be reached ends the run early (logged, counted as ``database``); claimed rows left behind
are settled by :meth:`Dispatcher.reconcile`, so nothing is lost or sent twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from consumers.notifications import store, templates
from consumers.notifications.issues import default_issue_sink
from consumers.notifications.planner import CANCELLED, WELCOME, Policy
from consumers.notifications.quiet_hours import QuietHours
from consumers.notifications.sender import (
    INVALID_NUMBER,
    NOT_MOBILE,
    UNSUBSCRIBED,
    SendError,
    SendRequest,
    SendResult,
    SmsBackend,
)
from infra.config import Settings
from infra.database import database_unavailable
from infra.models.columns import as_utc
from infra.models.messages import (
    CustodyState,
    NotifyAppointment,
    NotifyPerson,
    Reminder,
    ReminderState,
)
from schemas.envelope import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Twilio delivery statuses by progress; a status never replaces one of a higher rank.
STATUS_RANK: dict[str, int] = {
    "accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
    "delivered": 4, "undelivered": 4, "failed": 4, "read": 5, "canceled": 4,
}

#: How long a person still in custody (release not yet recorded) is looked at again.
CUSTODY_RECHECK = timedelta(minutes=15)
WELCOME_WAIT = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=1)



def better_status(current: str | None, new: str | None) -> bool:
    if new is None:
        return False
    if current is None:
        return True
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current, -1)


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    deferred: int = 0
    requeued: int = 0
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (key, outcome)
    #: Failures by kind: ``timeout``, ``unreachable``, ``throttled`` (429), ``server_error``
    #: (5xx), ``rejected`` (4xx), ``lookup:<kind>`` (checking for an earlier send failed),
    #: ``database`` (a run cut short because the database could not be reached).
    errors: Counter[str] = field(default_factory=Counter)
    #: Texts found already sent at Twilio when about to retry (so not sent again).
    found_sent: int = 0

    def add(self, other: DispatchReport) -> None:
        """Add ``other``'s counts to this report (outcomes are not kept)."""
        for name in ("sent", "retried", "failed", "skipped", "cancelled", "deferred",
                     "requeued", "found_sent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)


class Dispatcher:
    def __init__(self, engine: Engine, backend: SmsBackend, settings: Settings,
                 clock: Clock = utcnow, issue_sink: store.IssueSink | None = None) -> None:
        self.engine, self.backend, self.settings = engine, backend, settings
        # By default, "could not text" issues also become tasks when the tasks area is present.
        self.clock = clock
        self.issue_sink = issue_sink if issue_sink is not None else default_issue_sink(engine)
        self.quiet = QuietHours.from_settings(settings)
        self.policy = Policy.from_settings(settings)
        # A send cannot be in flight longer than this, so an older 'sending' row is orphaned.
        self.stale_after = timedelta(seconds=settings.twilio_timeout_seconds * 3 + 60)
        #: Counts over every run of this dispatcher (a service's metrics).
        self.totals = DispatchReport()
        #: Rows this process claimed (id -> its claimed_at) whose dispatch a database error cut
        #: short; and the last claim it made.
        self._interrupted: dict[str, datetime] = {}
        self._last_claim: tuple[str, datetime] | None = None

    # ------------------------------------------------------------------ public

    def run_once(self, limit: int = 200) -> DispatchReport:
        """Reconcile orphaned sends, then send every due text (oldest first, welcomes first).

        A database outage ends the run early (counted, logged); the next run carries on."""
        report = DispatchReport()
        current: str | None = None
        try:
            self.reconcile(report)
            self._settle_interrupted(report)
            for current in self.due_ids(limit):
                self.dispatch(current, report)
            current = None
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            if current is not None and self._last_claim and self._last_claim[0] == current:
                # Ours, and this process knows no send of it is under way: settle it as soon as
                # the database is back, not after ``stale_after`` like a crashed process's row.
                self._interrupted[current] = self._last_claim[1]
            report.errors["database"] += 1
            log.warning("dispatch: database unavailable (%s); the rest waits for the next run",
                        type(exc).__name__)
        finally:
            self.totals.add(report)
        return report

    def _settle_interrupted(self, report: DispatchReport) -> None:
        """Reconcile rows whose dispatch a database error cut short in this process."""
        for reminder_id, claimed_at in sorted(self._interrupted.items()):
            try:
                outcome = self._reconcile_one(reminder_id, interrupted=claimed_at)
            except SendError as exc:  # Twilio cannot say now: try again next run
                report.errors[f"lookup:{exc.kind}"] += 1
                continue
            self._interrupted.pop(reminder_id, None)
            if outcome != "gone":
                self._count(report, reminder_id, outcome)

    def due_ids(self, limit: int = 200) -> list[str]:
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.exec(
                select(Reminder.id, Reminder.kind, Reminder.send_at).where(
                    Reminder.state == ReminderState.SCHEDULED.value,
                    Reminder.send_at <= now,
                    or_(Reminder.next_attempt_at.is_(None), Reminder.next_attempt_at <= now),
                ).order_by(Reminder.send_at).limit(limit)
            ).all()
        rows = sorted(rows, key=lambda r: (as_utc(r[2]), r[1] != WELCOME))
        return [r[0] for r in rows]

    def claim(self, reminder_id: str) -> bool:
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            result = session.exec(  # type: ignore[call-overload]
                update(Reminder)
                .where(Reminder.id == reminder_id, Reminder.state == ReminderState.SCHEDULED.value)
                .values(state=ReminderState.SENDING.value, claimed_at=now, updated_at=now)
            )
            if result.rowcount != 1:
                session.rollback()
                return False
            row = session.get(Reminder, reminder_id)
            assert row is not None
            store.history(session, row, now, "dispatch", "claimed")
            session.commit()
        self._last_claim = (reminder_id, now)
        return True

    def dispatch(self, reminder_id: str, report: DispatchReport | None = None) -> str:
        """Claim, check and send one text. Returns the outcome (also added to ``report``)."""
        report = report if report is not None else DispatchReport()
        self._last_claim = None
        if not self.claim(reminder_id):
            return "not-claimed"
        outcome, request = self._prepare(reminder_id, report)
        if request is not None:
            outcome = self._send(reminder_id, request, report)
        self._count(report, reminder_id, outcome)
        return outcome

    def reconcile(self, report: DispatchReport | None = None, stale_after: timedelta | None = None
                  ) -> DispatchReport:
        """Settle rows left in ``sending`` by a crashed process (see the module docstring)."""
        report = report or DispatchReport()
        now = self.clock()
        cutoff = now - (self.stale_after if stale_after is None else stale_after)
        with Session(self.engine, expire_on_commit=False) as session:
            ids = session.exec(select(Reminder.id).where(
                Reminder.state == ReminderState.SENDING.value, Reminder.claimed_at <= cutoff
            )).all()
        for reminder_id in ids:
            try:
                outcome = self._reconcile_one(reminder_id)
            except SendError as exc:
                # Twilio cannot tell us now; the row stays in 'sending' for the next run.
                report.errors[f"lookup:{exc.kind}"] += 1
                log.warning("text %s left in sending: could not check with the provider (%s); "
                            "will check again", reminder_id, exc)
                continue
            self._count(report, reminder_id, outcome)
        return report

    # ------------------------------------------------------------------ steps

    def _prepare(self, reminder_id: str, report: DispatchReport
                 ) -> tuple[str, SendRequest | None]:
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(Reminder, reminder_id)
            assert row is not None
            verdict = self._check(session, row, now)
            if verdict is not None:
                session.commit()
                return verdict, None
            request = SendRequest(row.id, row.to_e164 or "", row.body, row.prison_number)
            if row.request_started_at is not None:
                # An earlier attempt may have arrived: look before sending again.
                try:
                    found = self._find(request, as_utc(row.request_started_at))
                except SendError as exc:
                    session.rollback()
                    lookup_failed = exc
                else:
                    lookup_failed = None
                    if found is not None:
                        self._mark_sent(session, row, found, now,
                                        "found after an unclear attempt")
                        session.commit()
                        report.found_sent += 1
                        return "sent", None
                if lookup_failed is not None:
                    session.close()
                    return self._failed(reminder_id, lookup_failed, report, lookup=True), None
            row.request_started_at, row.updated_at = now, now
            session.commit()
        return "send", request

    def _check(self, session: Session, row: Reminder, now: datetime) -> str | None:
        """None if the text may go now; else the row is moved on and the outcome returned."""
        expires = as_utc(row.expires_at)
        if expires is not None and now > expires:
            return self._finish(session, row, ReminderState.SKIPPED, now, "too late to be useful")
        if row.audience == "person":
            person = session.get(NotifyPerson, row.prison_number)
            if person is None or person.sms_consent is not True:
                return self._finish(session, row, ReminderState.CANCELLED, now, "no consent")
            if person.opted_out:
                return self._finish(session, row, ReminderState.CANCELLED, now, "opted out")
            if person.custody in (CustodyState.RETURNED.value,
                                  CustodyState.UNLAWFULLY_AT_LARGE.value):
                return self._finish(session, row, ReminderState.CANCELLED, now,
                                    f"person {person.custody}")
            if person.custody == CustodyState.PRE_RELEASE.value:
                return self._defer(session, row, now + CUSTODY_RECHECK, now,
                                   "still in custody", expires)
            if person.mobile_invalid or not person.mobile_e164:
                self._issue(session, row, now, "no valid mobile number")
                return self._finish(session, row, ReminderState.FAILED, now, "no valid mobile")
            if store.shares_number(session, person.prison_number, person.mobile_e164):
                self._issue(session, row, now, "the mobile number is shared with someone else")
                return self._finish(session, row, ReminderState.SKIPPED, now, "shared number")
            if self.quiet.is_quiet(now):
                return self._defer(session, row, self.quiet.next_allowed(now), now,
                                   "quiet hours", expires)
            if row.kind != WELCOME and self._welcome_pending(session, row):
                return self._defer(session, row, now + WELCOME_WAIT, now, "welcome first",
                                   expires)
            row.to_e164 = person.mobile_e164
        if not row.to_e164:
            return self._finish(session, row, ReminderState.FAILED, now, "no number")
        if not self.settings.is_production and row.to_e164 not in self.settings.sms_allow_list:
            return self._finish(session, row, ReminderState.SKIPPED, now,
                                f"not on the allow list ({self.settings.environment})")
        return None

    def _send(self, reminder_id: str, request: SendRequest, report: DispatchReport) -> str:
        try:
            result = self.backend.send(request)
        except SendError as exc:
            return self._failed(reminder_id, exc, report)
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(Reminder, reminder_id)
            assert row is not None
            self._mark_sent(session, row, result, now, f"sent via {self.backend.name}")
            session.commit()
        log.info("sent %s text %s to person %s", row.kind, row.id, row.prison_number or "(staff)")
        return "sent"

    def _failed(self, reminder_id: str, exc: SendError, report: DispatchReport,
                lookup: bool = False) -> str:
        """Record a failed send (or, with ``lookup``, a failed check for an earlier send)."""
        report.errors[f"lookup:{exc.kind}" if lookup else exc.kind] += 1
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(Reminder, reminder_id)
            assert row is not None
            row.attempts += 1
            row.error_code, row.detail, row.updated_at = exc.code, str(exc)[:500], now
            if exc.transient and row.attempts < self.settings.sms_max_attempts:
                if not lookup and not exc.may_have_arrived:
                    row.request_started_at = None  # a 429/4xx answer: Twilio did not take it
                delay = timedelta(seconds=self.settings.sms_retry_base_seconds
                                  * 2 ** (row.attempts - 1))
                row.state = ReminderState.SCHEDULED.value
                row.next_attempt_at = now + min(delay, MAX_BACKOFF)
                store.history(session, row, now, "dispatch", f"retry: {exc}")
                session.commit()
                log.warning("text %s to person %s: %s%s (%s); retry %d in %.1fs", row.id,
                            row.prison_number, "checking for an earlier send: " if lookup else "",
                            exc, exc.kind, row.attempts,
                            min(delay, MAX_BACKOFF).total_seconds())
                return "retry"
            if row.audience == "person" and row.prison_number:
                person = session.get(NotifyPerson, row.prison_number)
                if person is not None and exc.code == UNSUBSCRIBED:
                    person.opted_out, person.updated_at = True, now
                elif person is not None and exc.code in (INVALID_NUMBER, NOT_MOBILE):
                    person.mobile_invalid, person.updated_at = True, now
            why = {UNSUBSCRIBED: "the person has opted out of texts (STOP)",
                   INVALID_NUMBER: "the mobile number is not valid",
                   NOT_MOBILE: "the number is not a mobile"}.get(
                exc.code or 0, f"sending failed ({exc})")
            self._issue(session, row, now, why)
            self._finish(session, row, ReminderState.FAILED, now, str(exc))
            if row.audience == "person" and row.prison_number:
                session.flush()
                store.replan(session, row.prison_number, now, self.policy, f"send failed: {why}")
            session.commit()
            log.warning("text %s to person %s failed for good: %s", row.id, row.prison_number,
                        exc)
            return "failed"

    def _reconcile_one(self, reminder_id: str, interrupted: datetime | None = None) -> str:
        """Settle a row left in 'sending'. ``interrupted`` (the ``claimed_at`` of our claim):
        this process's own dispatch of it was cut short by a database error, so no request of
        it is in flight or unanswered; if Twilio has no such message it goes back to
        'scheduled' (and is looked for once more before it is sent) instead of "outcome
        unknown". A row claimed again since (by a process that took it over) is left alone."""
        now = self.clock()
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(Reminder, reminder_id)
            if row is None or row.state != ReminderState.SENDING.value:
                return "gone"
            if interrupted is not None and as_utc(row.claimed_at) != as_utc(interrupted):
                return "gone"
            request = SendRequest(row.id, row.to_e164 or "", row.body, row.prison_number)
            found: SendResult | None = None
            if row.twilio_sid:
                found = self.backend.lookup(row.twilio_sid)
            if found is None and row.request_started_at is not None:
                found = self._find(request, as_utc(row.request_started_at))
            if found is not None:
                self._mark_sent(session, row, found, now, "confirmed after restart")
                outcome = "sent"
            elif row.request_started_at is None and not row.twilio_sid:
                row.state, row.updated_at = ReminderState.SCHEDULED.value, now
                store.history(session, row, now, "reconcile", "requeued: no request was made")
                outcome = "requeued"
            elif interrupted is not None and not row.twilio_sid:
                row.state, row.updated_at = ReminderState.SCHEDULED.value, now
                store.history(session, row, now, "reconcile",
                              "requeued: not at Twilio after a database outage")
                outcome = "requeued"
            else:
                self._issue(session, row, now, "a text may or may not have arrived (system "
                            "restart); please check with the person")
                outcome = self._finish(session, row, ReminderState.FAILED, now,
                                       "outcome unknown after restart; not re-sent")
            session.commit()
        log.warning("reconciled text %s %s: %s", reminder_id,
                    "after a database outage" if interrupted is not None else "after restart",
                    outcome)
        return outcome

    # ------------------------------------------------------------------ helpers

    def _find(self, request: SendRequest, since: datetime | None) -> SendResult | None:
        return self.backend.find_sent(request, since or self.clock())

    def _mark_sent(self, session: Session, row: Reminder, result: SendResult, now: datetime,
                   detail: str) -> None:
        row.state, row.twilio_sid, row.sent_at, row.updated_at = (
            ReminderState.SENT.value, result.sid, now, now)
        if better_status(row.delivery_status, result.status):
            row.delivery_status = result.status
        if row.audience == "person" and row.appointment_id and row.kind != WELCOME:
            # Remember what the person now knows, so a later move or cancellation is told.
            appt = session.get(NotifyAppointment, (row.prison_number, row.appointment_id))
            if appt is not None:
                appt.told_for = None if row.kind == CANCELLED else appt.at
        store.history(session, row, now, "dispatch", detail)

    def _finish(self, session: Session, row: Reminder, state: ReminderState, now: datetime,
                detail: str) -> str:
        row.state, row.updated_at = state.value, now
        row.detail = detail[:500]
        store.history(session, row, now, "dispatch", detail)
        return state.value

    def _defer(self, session: Session, row: Reminder, until: datetime, now: datetime,
               why: str, expires: datetime | None) -> str:
        if expires is not None and until > expires:
            return self._finish(session, row, ReminderState.SKIPPED, now, f"{why}, then too late")
        row.state, row.next_attempt_at, row.updated_at = ReminderState.SCHEDULED.value, until, now
        store.history(session, row, now, "dispatch", f"deferred: {why}")
        return "deferred"

    def _welcome_pending(self, session: Session, row: Reminder) -> bool:
        welcome = session.exec(select(Reminder.state).where(
            Reminder.prison_number == row.prison_number, Reminder.kind == WELCOME,
            Reminder.audience == "person")).first()
        return welcome in (ReminderState.SCHEDULED.value, ReminderState.SENDING.value)

    def _issue(self, session: Session, row: Reminder, now: datetime, why: str) -> None:
        store.record_issue(
            session, key=f"could-not-text|{row.idempotency_key}", prison_number=row.prison_number,
            kind="could_not_text", reason=templates.could_not_text(row.kind, why), now=now,
            reminder=row, sink=self.issue_sink,
        )

    @staticmethod
    def _count(report: DispatchReport, reminder_id: str, outcome: str) -> None:
        report.outcomes.append((reminder_id, outcome))
        attr = {"sent": "sent", "retry": "retried", "failed": "failed", "skipped": "skipped",
                "cancelled": "cancelled", "deferred": "deferred", "requeued": "requeued"}
        if outcome in attr:
            setattr(report, attr[outcome], getattr(report, attr[outcome]) + 1)
