"""A leader lease in the database: one row per lease name, held by one process until it expires.

Works the same on SQLite and PostgreSQL: taking the lease is a single conditional UPDATE (only
if it is ours already or has expired), or an INSERT when no row exists yet; the database
serialises both, so two processes can never hold it at once. The holder renews it well within
its lifetime; a holder that stalls past expiry loses it to a standby.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from infra.models.columns import as_utc
from infra.models.tasks import SchedulerLease

_T = SchedulerLease.__table__  # type: ignore[attr-defined]
_EXPIRED = datetime(1970, 1, 1, tzinfo=UTC)


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(
        self, engine: Engine, ttl: timedelta, name: str = "scheduler", holder: str | None = None,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.name = name
        self.holder = holder or default_holder()

    def acquire(self, now: datetime) -> bool:
        """Take or renew the lease; ``True`` when this holder has it until ``now + ttl``."""
        now = now.astimezone(UTC)
        until = now + self.ttl
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(_T)
                .where(_T.c.name == self.name,
                       or_(_T.c.holder == self.holder, _T.c.expires_at <= now))
                .values(
                    acquired_at=case((_T.c.holder == self.holder, _T.c.acquired_at), else_=now),
                    holder=self.holder, expires_at=until,
                )
            )
            if taken.rowcount == 1:
                return True
            exists = conn.execute(select(_T.c.name).where(_T.c.name == self.name)).first()
        if exists:
            return False
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(_T).values(name=self.name, holder=self.holder,
                                               acquired_at=now, expires_at=until))
            return True
        except IntegrityError:
            return False  # another process created it first

    def held(self, now: datetime) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_T.c.holder, _T.c.expires_at).where(_T.c.name == self.name)
            ).first()
        if row is None:
            return False
        expires = as_utc(row.expires_at)
        return row.holder == self.holder and expires is not None and expires > now.astimezone(UTC)

    def release(self) -> None:
        """Give the lease up now (on a clean stop) so a standby need not wait for expiry."""
        with self.engine.begin() as conn:
            conn.execute(update(_T).where(_T.c.name == self.name, _T.c.holder == self.holder)
                         .values(expires_at=_EXPIRED))
