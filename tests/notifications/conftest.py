"""Fixtures for notification tests: a fake Twilio server, a controllable clock, and a database
migrated to the ``messages`` branch on SQLite and PostgreSQL.

``engine`` here overrides the shared one on purpose: it migrates only this area's branch
(``messages@head``), so these tests do not depend on other areas' migrations being finished.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from infra.config import Settings
from infra.database import make_engine, migrate

from .fake_twilio import FakeTwilio

MOBILE = "+447400123456"
MOBILE_2 = "+447400654321"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at.astimezone(UTC)

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate(eng, "messages@head")
    yield eng
    eng.dispose()


@pytest.fixture
def fake_twilio(clock: Clock) -> Iterator[FakeTwilio]:
    fake = FakeTwilio(clock=clock).start()
    yield fake
    fake.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def sms_settings(fake_twilio: FakeTwilio, database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=SecretStr(fake_twilio.auth_token),
        twilio_from_number="+447400000001",
        twilio_base_url=fake_twilio.base_url,
        hub_public_url="https://hub.example.test",
        sms_allow_list=[MOBILE, MOBILE_2],
        twilio_timeout_seconds=2.0,
    )
