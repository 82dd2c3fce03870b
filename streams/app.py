"""The Faust application, built by a function so tests and the CLI each get their own."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import faust
from faust.serializers.codecs import Codec
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka

from infra.config import Settings
from infra.kafka import faust_broker_url
from streams.calendar import ReleaseCalendar
from streams.clock import Clock, OffsetClock, WallClock
from streams.highwaters import fetched_ends
from streams.packed import Packed


class PackedCodec(Codec):
    """Table values travel on the changelog as the packed bytes the table already holds."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.to_bytes()  # type: ignore[no-any-return]

    def _loads(self, s: bytes) -> Any:
        return Packed.from_bytes(s)


#: How long the broker may hold a fetch that has nothing to return. Faust fixes 1,500 ms, and
#: Tansu holds an empty fetch that long, handing over a record that arrives meanwhile up to about
#: half of it later: most of a quiet system's publish -> alert latency. 100 ms costs ~2 % CPU idle.
FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when aiokafka starts its fetcher
        return consumer

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:
        """Records of the partitions active *now*, never of every partition.

        Faust passes its own live set of active partitions, and aiokafka reads an empty set as
        "all assigned partitions". While a fetch waits (up to ``timeout``) Faust can pause the
        last active ones, as recovery does with the changelogs before it resumes the inputs;
        aiokafka then handed over every partition's records, moving its positions past them,
        and Faust dropped those of the paused partitions: input records that were waiting when
        a worker restarted were lost (tests/streams/test_worker_integration.py). A copy taken
        now keeps the fetch to the partitions active when it was asked for."""
        if active_partitions is not None:
            active_partitions = set(active_partitions)
            if not active_partitions:  # Faust asks only with some active; sleep as it would
                await asyncio.sleep(timeout)
                return {}
        return await super().getmany(active_partitions, timeout)

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        """Changelog ends for recovery, from fetch responses (see streams/highwaters.py)."""
        listed = await super()._highwaters(partitions)
        settings = self.transport.settings  # type: ignore[attr-defined]
        if self.consumer.in_transaction or settings is None:
            return listed
        return await fetched_ends(settings, listed)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a shorter fetch wait for the worker's consumer."""

    Consumer = _Consumer
    #: The worker's settings, for the changelog-end probe (set by :func:`make_app`).
    settings: Settings | None = None


class _Recovery(Recovery):
    """Faust's table recovery, ending in an order that cannot drop input records.

    When the changelogs are read, Faust (0.15.3) resumes the input partitions, awaits the seek
    to their committed offsets, and only then calls ``app.flow_control.resume()``, which also
    *clears* every stream's queue (they are ``clear_on_resume``, meant to drop what was fetched
    before a rebalance). The fetcher has been running through the seek, so input records it
    fetched meanwhile and the agent had not yet taken were thrown away, with the consumer's
    position already past them: after a restart, events waiting in the input topics were lost
    (faust-streaming issue #596). Faust then committed over a single missing offset (its
    "committed + 1" gap tolerance, issue #606), so the loss was not even healed by the next
    restart. Here the seek and the clearing both happen before the input partitions are
    resumed, so nothing the seek positioned can be in the queues when they are cleared."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]))
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again app id %s param %s",
                             self.app.consumer_generation_id, generation_id)
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(),
                             timeout=self.app.conf.broker_request_timeout)
        self.completed.set()
        # Clear the queues (what they hold predates the seek), then let input records in; no
        # await in between, so nothing fetched from the resumed partitions can be cleared.
        self.app.flow_control.resume()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        consumer.resume_flow()
        await self.app._fetcher.maybe_start()  # type: ignore[attr-defined]
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class _TableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = _Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def broker_credentials(settings: Settings) -> Any:
    """Faust's credentials for the same security settings the kafka-python clients use."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile) if (
        protocol in ("SSL", "SASL_SSL")) else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
        ssl_context=context,
    )


def clock_for(settings: Settings) -> Clock:
    if settings.worker_clock_start is not None:
        return OffsetClock(settings.worker_clock_start, replay=settings.worker_replay)
    if settings.worker_replay:
        from streams.clock import EventTimeClock

        return EventTimeClock()
    return WallClock()


def make_app(
    settings: Settings,
    clock: Clock | None = None,
    calendar: ReleaseCalendar | None = None,
) -> faust.App:
    """A Faust app with the release-risk agent, its table and the sweep timer installed."""
    from streams.agents import install

    app = bare_app(settings)
    install(
        app,
        settings,
        clock or clock_for(settings),
        calendar or ReleaseCalendar(settings.timezone),
    )
    return app


def bare_app(settings: Settings, name: str = "stream-worker") -> faust.App:
    """The worker's Faust app, configured and with its transport, but nothing installed (the
    benchmark runs a decode-only agent on it to measure what Faust itself allows)."""
    session = settings.kafka_session_timeout_ms / 1000
    datadir = settings.faust_datadir / settings.topic_prefix.rstrip(".")
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.topic(name),
        broker=faust_broker_url(settings),
        broker_credentials=broker_credentials(settings),
        store=settings.faust_store,
        datadir=str(datadir),
        web_enabled=settings.faust_web_port is not None,
        web_port=settings.faust_web_port or 6066,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        broker_session_timeout=session,
        broker_heartbeat_interval=max(0.5, session / 4),
        table_standby_replicas=0,
        producer_acks=-1,
        # Tansu answers a produce request in well under a millisecond, so with no linger the
        # producer sends one tiny request per message; 5 ms lets changelog and alert messages
        # share requests (a third of the worker's time went on sending, before).
        producer_linger=0.005,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        TableManager=_TableManager,
    )
    app.transport = _Transport(app.conf.broker_consumer, app)
    app.transport.settings = settings
    return app
