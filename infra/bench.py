"""``ttg bench``: the six figures of issue 7 measured on this machine, in one run.

Each measurement runs against the real parts: the embedded broker (or ``TTG_KAFKA_BOOTSTRAP``),
the Faust worker and the alerts -> tasks consumer as child processes, and the bulk publisher.
Times that cross processes use the wall clock (``time.time``); monotonic clocks of different
processes cannot be compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra.config import Settings
from infra.topics import Topics


@dataclass(frozen=True)
class BenchConfig:
    events: int = 50_000  # simulated events for the ceiling, detection and bulk publish
    publish_events: int = 200_000  # lines in the file for the bulk publish figure
    people: int = 100_000  # tracked people for the sweep and the memory figure
    rate: int = 1_000  # offered events/s for the latency run
    latency_seconds: float = 10.0
    partitions: int = 3
    database_url: str | None = None  # default: a SQLite file in the run's scratch directory


@dataclass
class Metric:
    name: str
    value: float
    unit: str
    target: float
    higher_is_better: bool
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


# ------------------------------------------------------------------------------- helpers


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def simulated_lines(n: int, seed: int = 7) -> list[bytes]:
    """``n`` events of a simulated cohort as JSON lines (people added until there are enough)."""
    from infra.simulator import SimulationConfig, simulate, to_json_lines

    people = max(1, math.ceil(n / 3.0))
    lines = [s.encode() for s in to_json_lines(simulate(SimulationConfig(people=people,
                                                                         seed=seed)))]
    while len(lines) < n:  # the cohort came out short: top up with another seed
        people = max(1, math.ceil((n - len(lines)) / 2.5))
        seed += 1
        lines += [s.encode() for s in to_json_lines(simulate(SimulationConfig(people=people,
                                                                              seed=seed)))]
    return lines[:n]


def bench_settings(bootstrap: str, scratch: Path, cfg: BenchConfig, name: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=f"bench-{name}-{run}.",
        topic_partitions=cfg.partitions,
        kafka_session_timeout_ms=2000,
        database_url=cfg.database_url or f"sqlite:///{scratch / f'{name}-{run}.db'}",
        faust_datadir=scratch / "faust",
        tasks_consumer_group=f"bench-tasks-{run}",
    )


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "TTG_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "TTG_TOPIC_PREFIX": settings.topic_prefix,
        "TTG_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "TTG_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
        "TTG_DATABASE_URL": settings.database_url,
        "TTG_FAUST_DATADIR": str(settings.faust_datadir),
        "TTG_TASKS_CONSUMER_GROUP": settings.tasks_consumer_group,
        "TTG_LOG_LEVEL": "WARNING",
    })
    return env


def _spawn(args: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([sys.executable, *args], env=child_env(settings), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _input_partitions(settings: Settings) -> list[Any]:
    from kafka import TopicPartition

    topics = Topics.from_settings(settings)
    return [TopicPartition(t, p) for t in topics.inputs for p in range(settings.topic_partitions)]


# --------------------------------------------------------------------- 6. bulk publish


def measure_publish(settings: Settings, lines: list[bytes], scratch: Path) -> Metric:
    """Runs ``ttg publish FILE`` as a child process, timed from its own summary (the file read
    and validation included, interpreter start-up excluded)."""
    path = scratch / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    from infra.kafka import ensure_topics

    ensure_topics(settings)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "infra", "publish", str(path)],
                          env=child_env(settings), capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"ttg publish failed: {proc.stderr[-2000:]}")
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if f" {len(lines)} event(s) published" not in summary:
        raise RuntimeError(f"not every event was published: {summary}")
    seconds = _seconds_from_summary(summary) or wall
    return Metric("bulk publish rate", len(lines) / seconds, "events/s", 50_000, True,
                  {"events": len(lines), "seconds": round(seconds, 3),
                   "wall_seconds_with_startup": round(wall, 3), "summary": summary})


def _seconds_from_summary(summary: str) -> float | None:
    import re

    found = re.search(r"; ([0-9.]+)s, [0-9,]+ events/s", summary)
    return float(found.group(1)) if found else None


# ------------------------------------------------------------------------- 1. ceiling


async def _consume_decode(settings: Settings, expected: int) -> tuple[int, float, int]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    from schemas.codec import DecodeError, decode_input

    tps = [TopicPartition(tp.topic, tp.partition) for tp in _input_partitions(settings)]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False, max_partition_fetch_bytes=4 << 20,
                                fetch_max_bytes=16 << 20)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = bad = 0
        started = 0.0
        while count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if not batches:
                continue
            if not started:
                started = time.perf_counter()
            for records in batches.values():
                for record in records:
                    try:
                        decode_input(record.value)
                    except DecodeError:
                        bad += 1
                    count += 1
        return count, time.perf_counter() - started, bad
    finally:
        await consumer.stop()


def measure_ceiling(settings: Settings, expected: int) -> Metric:
    count, seconds, bad = asyncio.run(_consume_decode(settings, expected))
    return Metric("ceiling: consume + decode (aiokafka)", count / seconds, "events/s", 0, True,
                  {"events": count, "seconds": round(seconds, 3), "undecodable": bad})


# ---------------------------------------------------------------------- 2. detection


def _committed_total(consumer: Any, tps: list[Any]) -> int:
    return sum(consumer.committed(tp) or 0 for tp in tps)


def measure_detection(settings: Settings, scratch: Path, total: int, ceiling: float,
                      timeout: float = 900) -> Metric:
    """The real worker (``python -m infra.bench worker``: ``make_app`` with a short commit
    interval so its committed offsets track progress) reads the already-published events; the
    rate is measured from its first commit to the commit that covers the last event."""
    rate, seconds, timed = _time_commits(settings, scratch, total, "worker", timeout)
    return Metric("detection throughput / ceiling", rate / ceiling, "ratio", 0.5, True,
                  {"events_per_s": round(rate, 1), "events_timed": timed,
                   "seconds": round(seconds, 3)})


def measure_floor(settings: Settings, scratch: Path, total: int, ceiling: float,
                  timeout: float = 900) -> Metric:
    """What Faust itself allows: the worker's app and batching with an agent that only decodes
    (no table, rules or sends), timed like :func:`measure_detection`."""
    rate, seconds, timed = _time_commits(settings, scratch, total, "floor", timeout)
    return Metric("Faust floor: decode-only agent / ceiling", rate / ceiling, "ratio", 0, True,
                  {"events_per_s": round(rate, 1), "events_timed": timed,
                   "seconds": round(seconds, 3)})


#: The Faust app (so consumer group) of each ``python -m infra.bench`` mode that is timed.
APP_NAMES = {"worker": "stream-worker", "floor": "bench-floor"}


def _time_commits(settings: Settings, scratch: Path, total: int, mode: str,
                  timeout: float) -> tuple[float, float, int]:
    """Run ``python -m infra.bench MODE`` over the published events; (events/s, seconds, events
    timed) from its group's first offset commit to the one that covers the last event."""
    from kafka import KafkaConsumer

    from infra.kafka import client_config

    tps = _input_partitions(settings)
    group = settings.topic(APP_NAMES[mode])
    watcher = KafkaConsumer(**client_config(settings), group_id=group, enable_auto_commit=False)
    log = scratch / f"{mode}.log"
    worker = _spawn(["-m", "infra.bench", mode], settings, log)
    try:
        deadline = time.monotonic() + timeout
        first_at, first_done = 0.0, 0
        done = 0
        while done < total:
            if worker.poll() is not None:
                raise RuntimeError(f"{mode} exited early, see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} processed {done} of {total} events in {timeout}s")
            time.sleep(0.1)
            done = _committed_total(watcher, tps)
            if done and not first_at:
                first_at, first_done = time.perf_counter(), done
        seconds = time.perf_counter() - first_at
    finally:
        watcher.close()
        _stop(worker)
    rate = (total - first_done) / seconds if seconds > 0 else float("nan")
    return rate, seconds, total - first_done


def run_floor() -> None:
    """A decode-only agent on the worker's Faust app (see :func:`measure_floor`)."""
    from infra.config import get_settings
    from schemas.codec import DecodeError, decode_input
    from streams.agents import BATCH_MAX, BATCH_WAIT_SECONDS
    from streams.app import bare_app
    from streams.cli import quiet_worker

    settings = get_settings()
    app = bare_app(settings, APP_NAMES["floor"])
    app.conf.broker_commit_interval = 0.1
    raw = {"key_type": bytes, "value_type": bytes,
           "key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*Topics.from_settings(settings).inputs, **raw)

    async def decode_only(stream: Any) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WAIT_SECONDS):
            for event in batch:
                with contextlib.suppress(DecodeError):
                    decode_input(event.message.value)

    app.agent(inputs, name="floor")(decode_only)
    quiet_worker(app, "warning").execute_from_commandline()


def run_worker() -> None:
    """The stream worker as ``ttg worker`` runs it, committing often so progress is visible."""
    from infra.config import get_settings
    from streams.cli import run_worker as run

    run(get_settings(), "warning", commit_interval=0.1)


# ------------------------------------------------------------------------ 3. latency


def _pn(i: int) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    n = len(letters)
    return f"{letters[(i // 10_000) % n]}{i % 10_000:04d}{letters[(i // 230_000) % n]}" \
           f"{letters[(i // 5_290_000) % n]}"


def release_soon_event(pn: str, now: datetime, days: int = 5) -> bytes:
    """A release date ``days`` ahead with no accommodation known: raises an alert, so a task."""
    return json.dumps({
        "event_id": str(uuid.uuid4()), "type": "release_date.changed", "schema_version": 1,
        "occurred_at": now.isoformat(), "recorded_at": now.isoformat(), "source": "MDI",
        "person": {"prison_number": pn},
        "payload": {"new_date": (now + timedelta(days=days)).date().isoformat(),
                    "previous_date": None, "release_type": "conditional_release",
                    "reason": "sentence calculation", "recalculated_by": "OMU"},
    }, separators=(",", ":")).encode()


def _first_task_times(settings: Settings) -> dict[str, float]:
    from sqlalchemy import text

    from infra.database import make_engine
    from infra.models.columns import as_utc

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT prison_number, MIN(created_at) FROM tasks GROUP BY prison_number"
            )).all()
    except Exception:  # noqa: BLE001 - the consumer has not made its tables yet
        return {}
    finally:
        engine.dispose()
    out: dict[str, float] = {}
    for pn, created in rows:
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        out[pn] = as_utc(created).timestamp()  # type: ignore[union-attr]
    return out


def _first_alert_times(settings: Settings, people: set[str]) -> tuple[dict[str, float], int]:
    from kafka import KafkaConsumer, TopicPartition

    from infra.kafka import client_config

    topic = Topics.from_settings(settings).alerts
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False)
    first: dict[str, float] = {}
    count = 0
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        idle = 0
        while idle < 3:
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for r in records:
                    pn = (r.key or b"").decode()
                    if pn in people:
                        count += 1
                        at = r.timestamp / 1000
                        if at < first.get(pn, math.inf):
                            first[pn] = at
    finally:
        consumer.close()
    return first, count


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def measure_latency(settings: Settings, scratch: Path, rate: int, seconds: float) -> list[Metric]:
    from kafka import KafkaProducer

    from infra.kafka import client_config, ensure_topics

    ensure_topics(settings)
    topic = Topics.from_settings(settings).release_dates
    worker = _spawn(["-m", "infra.bench", "worker"], settings, scratch / "latency-worker.log")
    consumer = _spawn(["-m", "infra", "consume"], settings, scratch / "latency-consume.log")
    producer = KafkaProducer(**client_config(settings), acks=1, linger_ms=0)
    try:
        # Warm up until a task appears: both group joins and the table migration are done.
        deadline = time.monotonic() + 90
        i = 0
        while True:
            for proc, name in ((worker, "worker"), (consumer, "consume")):
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited, see {scratch}/latency-{name}.log")
            pn = _pn(i)
            i += 1
            producer.send(topic, key=pn.encode(), value=release_soon_event(pn, datetime.now(UTC)))
            producer.flush()
            time.sleep(0.5)
            if _first_task_times(settings):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no task within 90 s of starting the worker and consumer")
        time.sleep(2)  # let the warm-up drain
        sent: dict[str, float] = {}
        count = int(rate * seconds)
        base = 1_000_000
        start = time.time()
        for k in range(count):
            due = start + k / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            pn = _pn(base + k)
            now = time.time()
            producer.send(topic, key=pn.encode(),
                          value=release_soon_event(pn, datetime.fromtimestamp(now, UTC)))
            sent[pn] = now
        producer.flush()
        offered = count / (time.time() - start)
        waited_until = time.monotonic() + 45
        tasks: dict[str, float] = {}
        while time.monotonic() < waited_until:
            tasks = _first_task_times(settings)
            if all(pn in tasks for pn in sent):
                break
            time.sleep(0.5)
    finally:
        producer.close()
        _stop(consumer)
        _stop(worker)
    if not tasks:
        raise RuntimeError("no task row for any event of the latency run")
    # An event with no task by the end of the wait counts with the time waited so far, so the
    # percentiles are then lower bounds (flagged in the detail), never flattering.
    gave_up = time.time()
    latencies = [(tasks.get(pn, gave_up) - t) * 1000 for pn, t in sent.items()]
    seen = sum(pn in tasks for pn in sent)
    # Where the time goes: the worker's first alert for each person (its record timestamp).
    alerts, alert_count = _first_alert_times(settings, set(sent))
    to_alert = [(alerts[pn] - t) * 1000 for pn, t in sent.items() if pn in alerts]
    detail = {"events": count, "offered_rate": round(offered, 1), "tasks_seen": seen,
              "missing": count - seen, "lower_bound": seen < count, "alert_events": alert_count,
              "publish_to_alert_ms": {f"p{q}": round(_percentile(to_alert, q), 1)
                                      for q in (50, 95, 99)} if to_alert else None}
    return [
        Metric(f"publish -> task p{q}", _percentile(latencies, q), "ms",
               250 if q == 99 else math.inf, False, detail)
        for q in (50, 95, 99)
    ]


# ------------------------------------------------------------- 4 + 5. sweep and memory


def write_cohort(n: int, path: Path, now: datetime) -> None:
    """A simulated cohort of ``n`` people, one event per line, for :func:`people_figures`."""
    from infra.simulator import SimulationConfig, simulate, to_json_lines

    with path.open("w") as f:
        for line in to_json_lines(simulate(SimulationConfig(people=n, seed=11, now=now))):
            f.write(line + "\n")


def people_figures(path: Path, now: datetime) -> dict[str, float]:
    """In a fresh process: build the people of a cohort file exactly as the worker's agent does
    (packed, as its table holds them), measure the RSS they add, then time the timer's sweep.
    The cohort is simulated by another process, so no freed simulator garbage hides the growth."""
    from schemas.codec import decode_input
    from streams.calendar import ReleaseCalendar
    from streams.clock import FixedClock
    from streams.packed import Packed, sweep_packed
    from streams.person import Evaluator

    lines = path.read_bytes().splitlines()
    clock = FixedClock(now)
    evaluator = Evaluator(ReleaseCalendar(Settings().timezone), clock)
    gc.collect()
    rss_before = _rss_bytes()
    table: dict[str, Packed] = {}
    build_started = time.perf_counter()
    for i, line in enumerate(lines):
        event = decode_input(line)
        key = event.person.prison_number
        packed = table.get(key)
        record, _ = evaluator.on_event(packed.unpack() if packed else None, event, i % 3)
        table[key] = Packed.of(record)
    build_seconds = time.perf_counter() - build_started
    del event, record, packed
    gc.collect()
    rss_after = _rss_bytes()  # the input lines are still alive, as they were for rss_before
    del lines
    people = len(table)
    # What the table's own objects take (keys, packed objects and their bytes, dict slots): RSS
    # also counts allocator fragmentation left by the build.
    accounted = sys.getsizeof(table) + sum(
        sys.getsizeof(k) + sys.getsizeof(v) + sys.getsizeof(v.blob) for k, v in table.items())

    def timed(at: datetime) -> tuple[float, int]:
        clock.set(at)
        started = time.perf_counter()
        alerted = sweep_packed(evaluator, table, {0, 1, 2})
        for key, record, _ in alerted:  # written back, as the agent's sweep does
            table[key] = Packed.of(record)
        return time.perf_counter() - started, len(alerted)

    same_day, _ = timed(now + timedelta(minutes=1))
    # The sweep that matters: the first one after midnight, when a day's deadlines move.
    next_day, alerted = timed(now + timedelta(days=1))
    return {
        "people": people, "rss_delta_bytes": rss_after - rss_before,
        "bytes_per_person": (rss_after - rss_before) / people,
        "accounted_bytes_per_person": accounted / people,
        "build_seconds": build_seconds, "sweep_seconds": next_day,
        "sweep_alerted": alerted, "same_day_sweep_seconds": same_day,
    }


def measure_people(n: int, scratch: Path) -> list[Metric]:
    now = datetime.now(UTC).replace(microsecond=0)
    path = scratch / "cohort.jsonl"
    write_cohort(n, path, now)
    proc = subprocess.run([sys.executable, "-m", "infra.bench", "people", str(path),
                           now.isoformat()], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"people figures failed: {proc.stderr[-2000:]}")
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    sweep_detail = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in fig.items()
                    if k in ("people", "sweep_alerted", "same_day_sweep_seconds",
                             "build_seconds")}
    scale = 100_000 / fig["people"]
    return [
        Metric(f"sweep over {fig['people']:,} people", fig["sweep_seconds"], "s",
               1.0 / scale, False, sweep_detail),
        Metric("worker memory per person", fig["bytes_per_person"], "bytes", 2048, False,
               {"people": fig["people"], "rss_delta_bytes": fig["rss_delta_bytes"],
                "accounted_bytes_per_person": round(fig["accounted_bytes_per_person"])}),
    ]


# ---------------------------------------------------------------------------- the run


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] = lambda _: None,
              bootstrap: str | None = None) -> dict[str, Any]:
    from infra.broker import EmbeddedBroker

    broker = None
    if bootstrap is None:
        bootstrap = os.environ.get("TTG_KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap
    metrics: list[Metric] = []
    load_start = load_average()
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="ttg-bench-") as tmp:
            scratch = Path(tmp)
            progress(f"simulating {cfg.events:,} events")
            lines = simulated_lines(cfg.events)
            main = bench_settings(bootstrap, scratch, cfg, "load")
            loaded = measure_publish(main, lines, scratch)
            del lines
            progress("1. ceiling: aiokafka consume + decode")
            ceiling = measure_ceiling(main, cfg.events)
            metrics.append(ceiling)
            progress("2. detection throughput (Faust worker)")
            metrics.append(measure_detection(main, scratch, cfg.events, ceiling.value))
            progress("2a. Faust floor: a decode-only agent")
            metrics.append(measure_floor(main, scratch, cfg.events, ceiling.value))
            progress(f"3. latency at {cfg.rate:,} events/s")
            lat = bench_settings(bootstrap, scratch, cfg, "latency")
            metrics.extend(measure_latency(lat, scratch, cfg.rate, cfg.latency_seconds))
            progress(f"4-5. sweep and memory over {cfg.people:,} people")
            metrics.extend(measure_people(cfg.people, scratch))
            progress(f"6. bulk publish (ttg publish) of {cfg.publish_events:,} lines")
            big = bench_settings(bootstrap, scratch, cfg, "publish")
            published = measure_publish(big, simulated_lines(cfg.publish_events, seed=21),
                                        scratch)
            published.detail["first_load_events_per_s"] = round(loaded.value, 1)
            metrics.append(published)
    finally:
        if broker is not None:
            broker.stop()
    return {
        "config": asdict(cfg),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_average()],
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - started, 1),
        "metrics": [
            {"name": m.name, "value": m.value, "unit": m.unit,
             "target": None if math.isinf(m.target) else m.target,
             "met": None if math.isinf(m.target) or m.target == 0 else m.met,
             **({"detail": m.detail} if m.detail else {})}
            for m in metrics
        ],
    }


def main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        run_worker()
    elif argv[:1] == ["floor"]:
        run_floor()
    elif argv[:1] == ["people"]:
        print(json.dumps(people_figures(Path(argv[1]), datetime.fromisoformat(argv[2]))))
    else:
        raise SystemExit("usage: python -m infra.bench worker | floor | people COHORT_FILE NOW")


if __name__ == "__main__":
    main(sys.argv[1:])
