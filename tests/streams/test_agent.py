"""The agent in Faust's test context: decode, fold into the table, emit alerts, dead-letter."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from unittest.mock import AsyncMock

import pytest
from faust.types import TP

from infra.config import Settings
from schemas.codec import encode
from streams.app import make_app
from streams.clock import FixedClock
from tests.streams.factory import PN, release_date

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.fixture
def app(tmp_path):
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:9", topic_prefix="unit.",
                        faust_datadir=tmp_path, topic_partitions=1)
    app = make_app(settings, clock=FixedClock(NOW))
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    return app


def test_agent_folds_emits_and_dead_letters(app) -> None:
    asyncio.run(_scenario(app))


async def _scenario(app) -> None:
    parts = app.ttg
    parts.produce = AsyncMock()
    parts.dead_letter.send = AsyncMock()
    parts.table.send_changelog = lambda *a, **k: _Sent()
    async with parts.agent.test_context() as agent:
        good = encode(release_date(date(2026, 12, 11), NOW - timedelta(days=30)))
        await agent.put(b"{not json", key=PN.encode())
        await agent.put(good, key=PN.encode())
        await agent.put(good, key=PN.encode())  # a duplicate: nothing new

    assert parts.dead_letter.send.await_count == 1
    letter = json.loads(parts.dead_letter.send.await_args.kwargs["value"])
    assert letter["stage"] == "decode" and letter["reason"]
    sent = [json.loads(c.args[2]) for c in parts.produce.await_args_list]
    assert {c.args[0] for c in parts.produce.await_args_list} == {parts.topics.alerts}
    rules = {(e["type"], e["alert"]["rule_id"]) for e in sent}
    assert ("alert.raised", "release.friday_or_pre_holiday") in rules
    assert all(e["type"] == "alert.raised" for e in sent)
    assert len(sent) == len(rules)  # the duplicate raised nothing
    record = parts.record(PN)
    assert record.state.release_date == date(2026, 12, 11)
    assert set(record.alerts) == {e["alert"]["rule_id"] for e in sent}

    # The sweep, with no event: a week later the 7-day checks fire and are written back.
    parts.produce.reset_mock()
    changelog: list[tuple[int, str]] = []
    parts.table.send_changelog = lambda p, k, v, *a, **kw: changelog.append((p, k))
    app.assignor.assigned_actives = lambda: {TP(parts.topics.release_dates, 0)}
    assert await parts.sweep() == 0  # same day: nothing can have changed
    parts.evaluator.clock.set(NOW + timedelta(days=3))  # 7 days before release
    emitted = await parts.sweep()
    swept = [json.loads(c.args[2]) for c in parts.produce.await_args_list]
    assert emitted == len(swept) > 0
    assert ("alert.raised", "health.continuity") not in {
        (e["type"], e["alert"]["rule_id"]) for e in swept}
    assert ("alert.raised", "appointment.first_missing") in {
        (e["type"], e["alert"]["rule_id"]) for e in swept}
    assert changelog == [(0, PN)]
    assert "appointment.first_missing" in parts.record(PN).alerts
    # An event that breaks evaluation is dead-lettered too, and the agent carries on.
    def broken(*args, **kwargs):
        raise RuntimeError("rule bug")

    parts.evaluator.on_events = broken
    async with parts.agent.test_context() as agent:
        await agent.put(encode(release_date(date(2026, 12, 18), NOW)), key=PN.encode())
    letter = json.loads(parts.dead_letter.send.await_args.kwargs["value"])
    assert letter["stage"] == "evaluate" and "rule bug" in letter["reason"]
    assert parts.record(PN).state.release_date == date(2026, 12, 11)  # unchanged

    # Standby copies are someone else's to sweep.
    app.assignor.assigned_actives = lambda: set()
    parts.evaluator.clock.set(NOW + timedelta(days=8))
    assert await parts.sweep() == 0


class _Sent:
    class message:  # noqa: N801 - mimics FutureMessage.message
        partition = 0
