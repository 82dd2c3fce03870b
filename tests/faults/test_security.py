"""Security through the running pipeline (issue 8, item 6), beside the hub's own access tests
(tests/hub/test_api_access.py enumerates every OpenAPI route for unauthenticated and cross-hub
calls; tests/hub/test_privacy_audit.py keeps health notes from police; tests/notifications/
test_webhooks.py refuses unsigned Twilio calls).

Here a simulated cohort, with mobile numbers, consent, mentor names and the example directory's
staff, runs through the real worker, tasks and notifications consumers and text dispatch. Then:
- every message on every output topic validates against its contract, whose models forbid
  unknown fields, so Kafka carries only the fields the contracts define;
- no output message carries a person's mobile number or a mentor's name;
- no log line of any service (the worker's log file, and every record the consumer threads and
  dispatch logged, down to DEBUG) holds a phone number or a name.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.broker import EmbeddedBroker
from infra.logs import LIBRARIES
from infra.simulator import SimulationConfig, simulate
from schemas.events import INPUT_MODELS
from schemas.outputs import AlertEvent, DeadLetter, ReminderEvent, TaskEvent
from tests.journeys.world import EXAMPLE_HUBS, World, event

pytestmark = pytest.mark.kafka

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
#: Any form of an Ofcom drama-range mobile (all numbers in the simulator and the directory).
PHONE = re.compile(r"(?:\+?44|\b0)\s?7700\s?900\s?\d{3}")
MENTORS = ("Roberta Quill-Smythe", "Desmond Arkwright")


def staff_names() -> list[str]:
    directory = tomllib.loads(Path(EXAMPLE_HUBS).read_text())
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "name" and isinstance(value, str) and "(" in value:
                    names.append(value)  # people ("Housing Officer One (Cambs)"), not hubs
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(directory)
    return names


@pytest.fixture(scope="module")
def world(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World.start(broker.bootstrap, tmp_path_factory.mktemp("security"), START)
    yield w
    w.close()


def cohort() -> list[Any]:
    events = [INPUT_MODELS[e["type"]].model_validate(e)
              for e in simulate(SimulationConfig(people=25, seed=8, now=START))]
    # Two people with a mentor named, released soon with consent to texts (so texts are due).
    for i, mentor in enumerate(MENTORS):
        pn = f"S{7100 + i}XY"
        events += [
            event("release_date.changed", pn, START - timedelta(days=20),
                  new_date=(START + timedelta(days=2)).date(),
                  release_type="conditional_release"),
            event("case_note.contact", pn, START - timedelta(days=5),
                  mobile=f"07700 900{990 + i:03d}", sms_consent=True, consent_recorded_by="OMU"),
            event("case_note.mentor", pn, START - timedelta(days=4), mentor_name=mentor,
                  organisation="Through the Gate Mentors"),
        ]
    return events


def test_outputs_carry_only_contract_fields_and_nothing_personal_reaches_logs(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    # Our services at DEBUG, libraries as infra.logs keeps them (at DEBUG, kafka-python logs
    # the raw bytes it sends: payloads are not ours to redact, so it never runs that way).
    caplog.set_level(logging.DEBUG)
    for library in LIBRARIES:
        caplog.set_level(logging.WARNING, logger=library)
    events = cohort()
    mobiles = {e.payload.mobile for e in events
               if e.type == "case_note.contact" and e.payload.mobile}
    assert mobiles, "the cohort must include phone numbers for this test to mean anything"
    world.publish(*events)
    last = [e for e in events if e.person.prison_number.startswith("S71")][-1]
    world.wait_for("the mentored people's tasks",
                   lambda: world.tasks(last.person.prison_number), timeout=90)
    world.dispatch()
    world.check()

    contracts = {world.topics.alerts: AlertEvent, world.topics.tasks: TaskEvent,
                 world.topics.reminders: ReminderEvent, world.topics.dead_letter: DeadLetter}
    checked = 0
    for topic, model in contracts.items():
        for record in world.records(topic, 10):
            model.model_validate_json(record.value)  # extra fields are refused
            checked += 1
            if topic != world.topics.dead_letter:  # dead letters keep the input's own bytes
                text = record.value.decode()
                assert not PHONE.search(text), f"a phone number on {topic}: {text[:300]}"
                assert not any(m in text for m in MENTORS), f"a mentor's name on {topic}"
    assert checked > len(events) // 4  # alerts and tasks were really produced and read

    logged = (world.tmp / "worker.log").read_text(errors="replace")
    logged += "\n".join(r.getMessage() for r in caplog.records)
    assert len(caplog.records) > 10  # the services did log while the cohort ran
    for name in (*MENTORS, *staff_names()):
        assert name not in logged, f"{name!r} appears in a log"
    found = PHONE.search(logged)
    assert found is None, f"a phone number in the logs: {logged[found.start() - 80:found.end()]}"
