"""`ttg publish`: valid lines reach their topics, invalid ones the dead-letter topic, loudly."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from infra.bulk import BulkWriter
from infra.config import Settings
from infra.publish import publish_lines
from infra.topics import Topics
from schemas import decode_input
from schemas.outputs import DEAD_LETTER_ADAPTER

from .conftest import read_topic
from .eventgen import event, lines

pytestmark = pytest.mark.kafka

HMPPS_RELEASE = {
    "eventType": "prison-offender-events.prisoner.released",
    "version": 1,
    "occurredAt": "2026-11-20T10:15:00Z",
    "publishedAt": "2026-11-20T10:15:03Z",
    "description": "A prisoner has been released from prison",
    "additionalInformation": {"nomsNumber": "A5194DY", "prisonId": "MDI", "reason": "RELEASED"},
    "personReference": {"identifiers": [{"type": "NOMS", "value": "A5194DY"}]},
}


def write(path: Path, rows: list[bytes | str | dict]) -> Path:
    out = []
    for row in rows:
        if isinstance(row, dict):
            row = json.dumps(row)
        out.append(row if isinstance(row, bytes) else row.encode())
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def test_publish_file_sends_valid_lines_and_dead_letters_the_rest(
    cli_env: Settings, cli_app: typer.Typer, tmp_path: Path
) -> None:
    topics = Topics.from_settings(cli_env)
    bad_event = event(3)
    bad_event["person"]["prison_number"] = "1234ABC"
    rows: list[bytes | str | dict] = [
        event(1, "release_date.changed"),           # 1
        "",                                          # 2 blank: skipped, not an error
        bad_event,                                   # 3 invalid prison number
        b'{"type": "custody.release", oops',         # 4 not JSON
        HMPPS_RELEASE,                               # 5 HMPPS, translated
        {**HMPPS_RELEASE, "eventType": "prison-offender-events.prisoner.merged"},  # 6
        event(7, "case_note.accommodation"),         # 7
        b"\xff\xfe not utf-8",                       # 8
    ]
    path = write(tmp_path / "events.jsonl", rows)
    result = CliRunner().invoke(cli_app, ["publish", str(path)])
    assert result.exit_code == 1, result.output
    for n, why in ((3, "prison_number"), (4, "JSON"), (6, "not supported"), (8, "UTF-8")):
        assert f"events.jsonl:{n}: " in result.stderr and why in result.stderr, result.stderr
    assert "events.jsonl:1:" not in result.stderr and "events.jsonl:5:" not in result.stderr
    assert "3 event(s) published" in result.stdout and "4 invalid" in result.stdout

    dead = read_topic(cli_env, topics.dead_letter, 4)
    letters = {DEAD_LETTER_ADAPTER.validate_json(r.value).offset: (r, DEAD_LETTER_ADAPTER
               .validate_json(r.value)) for r in dead}
    assert sorted(letters) == [3, 4, 6, 8]
    raw_lines = path.read_bytes().split(b"\n")
    for n, (record, letter) in letters.items():
        assert letter.original == raw_lines[n - 1].strip()
        assert letter.topic == "events.jsonl" and letter.reason
        assert ("ttg-source", f"events.jsonl:{n}".encode()) in record.headers
    assert "prison_number" in letters[3][1].reason

    custody = read_topic(cli_env, topics.custody, 1)
    assert [decode_input(r.value).type for r in custody] == ["custody.release"]
    assert custody[0].key == b"A5194DY"
    assert len(read_topic(cli_env, topics.release_dates, 1)) == 1
    assert len(read_topic(cli_env, topics.case_notes, 1)) == 1


def test_publish_stdin_all_valid_exits_zero(
    cli_env: Settings, cli_app: typer.Typer
) -> None:
    topics = Topics.from_settings(cli_env)
    data = b"".join(lines(30))
    result = CliRunner().invoke(cli_app, ["publish", "-"], input=data)
    assert result.exit_code == 0, result.output
    assert "30 event(s) published" in result.stdout
    got = [r for t in topics.inputs for r in read_topic(cli_env, t, 10)]
    assert len(got) == 30
    assert read_topic(cli_env, topics.dead_letter, 0, timeout=1) == []


def test_publish_missing_file_is_a_usage_error(cli_env: Settings, cli_app: typer.Typer) -> None:
    result = CliRunner().invoke(cli_app, ["publish", "/no/such/file.jsonl"])
    assert result.exit_code == 2


def test_bulk_publish_delivers_every_line(topics_ready: Settings) -> None:
    topics = Topics.from_settings(topics_ready)
    n = 5_000
    with BulkWriter(topics_ready) as writer:
        result = publish_lines(lines(n), writer, topics, "bulk.jsonl")
    assert result.ok and result.published == n
    got = sum(len(read_topic(topics_ready, t, result.by_topic[t])) for t in topics.inputs)
    assert got == n


def test_bulk_publish_in_worker_processes_keeps_order_and_line_numbers(
    topics_ready: Settings,
) -> None:
    topics = Topics.from_settings(topics_ready)
    n, people = 9_500, 40  # several chunks, so workers really share the work
    rows = []
    for i in range(n):
        if i % 997 == 0:
            rows.append(b'{"broken": ' + str(i).encode() + b"\n")
        else:
            ev = event(i, "custody.release", person=i % people)
            ev["event_id"] = str(uuid.UUID(int=i))
            rows.append(json.dumps(ev).encode() + b"\n")
    errors: list[int] = []
    with BulkWriter(topics_ready) as writer:
        result = publish_lines(rows, writer, topics, "big.jsonl",
                               on_error=lambda e: errors.append(e.line), workers=2)
    bad = [i + 1 for i in range(n) if i % 997 == 0]
    assert errors == bad and result.invalid == len(bad)
    assert result.published == n - len(bad) and result.undelivered == 0
    records = read_topic(topics_ready, topics.custody, n - len(bad))
    assert len(records) == n - len(bad)
    seen: dict[bytes, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        seen.setdefault(r.key, []).append(uuid.UUID(json.loads(r.value)["event_id"]).int)
    assert len(seen) == people
    for sequence in seen.values():
        assert sequence == sorted(sequence)  # each person's events in file order
    dead = read_topic(topics_ready, topics.dead_letter, len(bad))
    assert sorted(DEAD_LETTER_ADAPTER.validate_json(r.value).offset for r in dead) == bad


@pytest.mark.slow
def test_bulk_publish_rate_100k(topics_ready: Settings) -> None:
    data = list(lines(100_000))
    with BulkWriter(topics_ready) as writer:
        result = publish_lines(data, writer, Topics.from_settings(topics_ready), "bulk.jsonl",
                               workers=2)
    print(result.summary())
    assert result.ok and result.published == 100_000
    assert result.rate > 5_000


def test_records_the_broker_never_stored_are_counted_not_lost(settings: Settings) -> None:
    from infra.broker import EmbeddedBroker

    with EmbeddedBroker() as own:
        s = settings.model_copy(update={"kafka_bootstrap": own.bootstrap,
                                        "producer_ack_timeout_s": 1.0})
        from infra.kafka import ensure_topics

        ensure_topics(s)
        writer = BulkWriter(s)
        topics = Topics.from_settings(s)
        for t in topics.inputs:
            writer.partition_count(t)  # metadata known, as in a run already under way
        own.stop()  # then the broker goes away before anything is sent
        result = publish_lines(lines(50), writer, topics, "lost.jsonl")
        writer.close()
    assert not result.ok
    assert result.undelivered == 50 and result.published == 0
    assert result.delivery_errors and "NOT acknowledged" in result.summary()
