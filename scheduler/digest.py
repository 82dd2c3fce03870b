"""The daily digest per hub: what is overdue and what falls due soon, one row per hub per day.

Digests are stored (``task_digests``) so a later step (texts to hub staff) can send them, and
logged. They carry task ids, prison numbers, needs and roles: never names or phone numbers.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from consumers.tasks import utc
from infra.database import session_scope
from infra.models.hubs import Hub
from infra.models.tasks import ACTIVE_STATUSES, UNROUTED, Task, TaskDigest

log = logging.getLogger(__name__)


def _line(t: Task, tz: ZoneInfo) -> str:
    owner = f"{t.owner_role} ({t.owner_staff_id})" if t.owner_staff_id else f"{t.owner_role} queue"
    due = utc(t.due_at).astimezone(tz).strftime("%a %d %b %H:%M")
    state = " acknowledged" if t.status == "acknowledged" else ""
    return f"- {t.id} {t.prison_number} {t.need} [{t.priority}] due {due}; {owner}{state}"


def render(hub_key: str, day: date, overdue: list[Task], due: list[Task], tz: ZoneInfo,
           horizon_hours: float) -> str:
    head = (f"Tasks digest for {hub_key}, {day.strftime('%A %d %B %Y')}: {len(overdue)} overdue, "
            f"{len(due)} due in the next {horizon_hours:g} h")
    lines = [head]
    if overdue:
        lines += ["OVERDUE", *(_line(t, tz) for t in overdue)]
    if due:
        lines += ["DUE", *(_line(t, tz) for t in due)]
    if not overdue and not due:
        lines.append("Nothing overdue or due.")
    return "\n".join(lines)


def build_digests(
    engine: Engine, now: datetime, tz_name: str, horizon_hours: float,
) -> list[TaskDigest]:
    """Make today's digest for every active hub (and UNROUTED when it holds tasks).

    A hub that already has today's digest is skipped, so running this twice (or on two
    schedulers) stores one digest per hub per day."""
    now = utc(now)
    tz = ZoneInfo(tz_name)
    day = now.astimezone(tz).date()
    horizon = now + timedelta(hours=horizon_hours)
    with Session(engine) as session:
        hubs = [h.code for h in session.exec(select(Hub).where(Hub.active)).all()]
        tasks = session.exec(
            select(Task).where(col(Task.status).in_(ACTIVE_STATUSES),
                               Task.historical == False,  # noqa: E712
                               col(Task.due_at) <= horizon)
        ).all()
    by_hub: dict[str, list[Task]] = {code: [] for code in hubs}
    for t in tasks:
        by_hub.setdefault(t.hub_code or UNROUTED, []).append(t)
    made: list[TaskDigest] = []
    for hub_key, items in sorted(by_hub.items()):
        items.sort(key=lambda t: (utc(t.due_at), t.id))
        overdue = [t for t in items if utc(t.due_at) < now]
        due = [t for t in items if utc(t.due_at) >= now]
        digest = TaskDigest(hub_key=hub_key, digest_date=day, created_at=now,
                            due_count=len(due), overdue_count=len(overdue),
                            body=render(hub_key, day, overdue, due, tz, horizon_hours))
        try:
            with session_scope(engine) as session:
                session.add(digest)
        except IntegrityError:
            continue  # today's digest for this hub exists already
        log.info("digest %s %s: %d overdue, %d due\n%s", hub_key, day, len(overdue), len(due),
                 digest.body)
        made.append(digest)
    return made
