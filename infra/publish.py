"""Publishing a JSON-lines file of events: validate every line, send the good, park the bad.

Each line is one event in our contracts, or one HMPPS domain event (a JSON object with
``eventType``), which :mod:`schemas.hmpps` translates first. A line that fails is reported
with its number and reason and sent to the dead-letter topic with its original bytes
(``topic`` = the file name, ``offset`` = the line number, header ``ttg-source`` =
``file:LINE``); nothing is dropped silently.

Lines are written in whole record batches (:class:`infra.bulk.BulkWriter`), so a large file
goes at tens of thousands of events a second; every batch is acknowledged by the broker
(``acks=all``) before ``publish_lines`` returns, and any it refused are counted and reported.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from infra.bulk import BulkWriter, partition_of, record_tail
from infra.producer import build_dead_letter
from infra.topics import Topics
from schemas.codec import DecodeError, decode_input
from schemas.envelope import Envelope
from schemas.events import input_family
from schemas.hmpps import from_hmpps, is_hmpps


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str


@dataclass
class PublishResult:
    source: str
    lines: int = 0
    blank: int = 0
    published: int = 0
    from_hmpps: int = 0
    invalid: int = 0
    undelivered: int = 0
    by_topic: Counter[str] = field(default_factory=Counter)
    delivery_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.undelivered == 0

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        topics = ", ".join(f"{t}={n}" for t, n in sorted(self.by_topic.items())) or "none"
        text = (
            f"{self.source}: {self.lines} line(s) read, {self.published} event(s) published "
            f"({self.from_hmpps} from HMPPS events; {topics}), {self.invalid} invalid line(s) "
            f"sent to the dead-letter topic, {self.blank} blank; "
            f"{self.seconds:.2f}s, {self.rate:,.0f} events/s"
        )
        if self.undelivered:
            text += f"; {self.undelivered} record(s) NOT acknowledged by the broker"
        return text


def decode_line(line: bytes) -> tuple[Envelope, bool]:
    """One line as an event: ``(event, translated_from_hmpps)``; :class:`DecodeError` if not."""
    # A cheap byte test first: parsing JSON twice for every native line would halve the rate.
    if b'"eventType"' in line or b'"Type"' in line:
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if is_hmpps(data):
            return from_hmpps(data), True
    return decode_input(line), False


#: Lines validated per unit of work (per worker round trip when validating in processes).
CHUNK_LINES = 4_000

# (line number, topic, partition, record tail, translated) or (line number, reason, line)
_Prepared = tuple[int, str, int, bytes, bool] | tuple[int, str, bytes]


@dataclass(frozen=True)
class _Plan:
    """What a worker needs to route events: topic per family and partition counts."""

    family_topics: dict[str, str]
    partitions: dict[str, int]


def _prepare(plan: _Plan, chunk: list[tuple[int, bytes]]) -> list[_Prepared]:
    """Validate lines and lay out each good one as a Kafka record (runs in worker processes)."""
    out: list[_Prepared] = []
    for number, line in chunk:
        try:
            event, translated = decode_line(line)
        except DecodeError as exc:
            out.append((number, str(exc), line))
            continue
        topic = plan.family_topics[input_family(event.type)]
        key = event.key
        value = event.model_dump_json().encode() if translated else line
        # A native line is sent as written (it has just been validated); a translated one as
        # its contract form.
        out.append((number, topic, partition_of(key, plan.partitions[topic]),
                    record_tail(key, value), translated))
    return out


def _chunks(lines: Iterable[bytes], result: PublishResult) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for number, raw in enumerate(lines, start=1):
        result.lines = number
        line = raw.strip()
        if not line:
            result.blank += 1
            continue
        chunk.append((number, line))
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prepared_in_order(
    plan: _Plan, chunks: Iterator[list[tuple[int, bytes]]], workers: int
) -> Iterator[list[_Prepared]]:
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if second is None or workers < 1:
        # A small input is not worth starting processes for.
        yield _prepare(plan, first)
        if second is not None:
            yield _prepare(plan, second)
        for chunk in chunks:
            yield _prepare(plan, chunk)
        return
    # fork: workers inherit the imported models instead of importing them again.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # Bounded read-ahead keeps memory flat however large the file; results come back in
        # submission order, so one person's events keep their order.
        pending: deque[Future[list[_Prepared]]] = deque(
            pool.submit(_prepare, plan, c) for c in (first, second)
        )
        for chunk in chunks:
            pending.append(pool.submit(_prepare, plan, chunk))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def publish_lines(
    lines: Iterable[bytes],
    writer: BulkWriter,
    topics: Topics,
    source: str,
    on_error: Callable[[LineError], None] | None = None,
    workers: int = 0,
) -> PublishResult:
    """Validate and send each line; returns once the broker has acknowledged (or refused) all.

    ``workers`` > 0 validates in that many processes (worth it from a few thousand lines).
    """
    result = PublishResult(source=source)
    started = time.perf_counter()
    plan = _Plan(
        family_topics={f: topics.for_family(f) for f in ("release_dates", "custody",
                                                          "case_notes")},
        partitions={t: writer.partition_count(t) for t in topics.inputs},
    )
    by_topic = result.by_topic
    for prepared in _prepared_in_order(plan, _chunks(lines, result), workers):
        for item in prepared:
            if len(item) == 5:
                _, topic, partition, tail, translated = item
                writer.append_tail(topic, partition, tail)
                by_topic[topic] += 1
                result.from_hmpps += translated
                continue
            number, reason, line = item
            result.invalid += 1
            if on_error:
                on_error(LineError(number, reason))
            letter = build_dead_letter(reason, line, source, None, number, None, stage="publish")
            writer.append(topics.dead_letter, letter.model_dump_json().encode(), None,
                          [("ttg-source", f"{source}:{number}".encode())])
    writer.flush()
    for failure in writer.failures:
        result.undelivered += failure.records
        if failure.topic != topics.dead_letter:
            by_topic[failure.topic] -= failure.records
        if len(result.delivery_errors) < 10:
            result.delivery_errors.append(
                f"{failure.records} record(s) for {failure.topic}[{failure.partition}]: "
                f"{failure.error}"
            )
    result.published = sum(by_topic.values())
    result.seconds = time.perf_counter() - started
    return result
