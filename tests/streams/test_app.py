import asyncio
from types import SimpleNamespace

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.utils.queues import FlowControlEvent
from pydantic import SecretStr

from infra.config import Settings
from streams.app import _ConsumerThread, _Recovery, broker_credentials, make_app


def _settings(**kw) -> Settings:
    return Settings(_env_file=None, kafka_bootstrap="h1:9092,h2:9092", **kw)


def test_app_takes_its_configuration_from_settings(tmp_path) -> None:
    s = _settings(topic_prefix="x.", topic_partitions=4, kafka_session_timeout_ms=3000,
                  faust_datadir=tmp_path)
    app = make_app(s)
    assert app.conf.id == "x.stream-worker"
    assert [str(u) for u in app.conf.broker] == ["kafka://h1:9092", "kafka://h2:9092"]
    assert app.conf.topic_partitions == 4
    assert app.conf.broker_session_timeout == 3.0
    assert not app.conf.web_enabled
    assert broker_credentials(s) is None


def test_sasl_and_ssl_credentials_follow_the_kafka_settings() -> None:
    sasl = broker_credentials(_settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc", kafka_sasl_password=SecretStr("pw")))
    assert sasl.protocol.value == "SASL_SSL" and sasl.username == "svc"
    assert sasl.password == "pw" and sasl.mechanism.value == "SCRAM-SHA-512"
    assert broker_credentials(_settings(kafka_security_protocol="SSL")).protocol.value == "SSL"


def test_the_app_recovers_its_table_with_the_worker_recovery(tmp_path) -> None:
    app = make_app(_settings(faust_datadir=tmp_path))
    assert type(app.tables.recovery) is _Recovery


def test_a_fetch_asks_for_the_partitions_active_when_it_was_made(monkeypatch) -> None:
    """aiokafka reads an empty partition set as "all of them", and Faust hands over its live set:
    paused while the fetch waited, it fetched (and Faust dropped) every partition's records."""
    asked: list[set] = []
    live = {TP("in", 0)}

    async def fetch(self, active, timeout):
        asked.append(active)
        live.clear()  # recovery pauses the last active partitions while the fetch waits
        return {}

    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "getmany", fetch)
    thread = _ConsumerThread.__new__(_ConsumerThread)
    asyncio.run(thread.getmany(live, 1.0))
    assert asked == [{TP("in", 0)}] and asked[0] is not live
    assert asyncio.run(thread.getmany(set(), 0.01)) == {} and len(asked) == 1


def test_recovery_clears_the_stream_queues_before_it_resumes_the_inputs() -> None:
    """Faust resumed the inputs, awaited the seek, then cleared every stream queue: whatever
    was fetched meanwhile was lost. The queues must be cleared after the seek, before any input
    partition can deliver."""
    steps: list[str] = []
    inputs = {TP("in", 0), TP("in", 1)}
    changelog = TP("people-changelog", 0)

    class Flow(FlowControlEvent):
        def clear(self) -> None:
            steps.append("clear queues")
            super().clear()

    async def perform_seek() -> None:
        await asyncio.sleep(0)
        steps.append("seek")

    async def nothing(*args, **kwargs) -> None:
        return None

    async def wait(coro, timeout=None) -> None:
        await coro

    consumer = SimpleNamespace(
        assignment=lambda: inputs | {changelog}, perform_seek=perform_seek,
        resume_partitions=lambda tps: steps.append(f"resume {sorted(tp.topic for tp in tps)}"),
        resume_flow=lambda: steps.append("resume flow"))
    app = SimpleNamespace(
        consumer=consumer, consumer_generation_id=3, flow_control=Flow(),
        on_rebalance_complete=SimpleNamespace(send=nothing),
        conf=SimpleNamespace(broker_request_timeout=1.0),
        _fetcher=SimpleNamespace(maybe_start=nothing),
        assignor=SimpleNamespace(assigned_standbys=set),
        on_rebalance_end=lambda: steps.append("ready"))
    recovery = SimpleNamespace(
        app=app, log=SimpleNamespace(info=print, warning=print),
        tables=SimpleNamespace(values=list, on_actives_ready=lambda: None,
                               on_standbys_ready=lambda: None),
        _set_recovery_ended=lambda: None, _wait=wait,
        completed=asyncio.Event(), _is_changelog_tp=lambda tp: tp == changelog,
        actives_for_table={}, standbys_for_table={})
    asyncio.run(_Recovery.on_recovery_completed(recovery, 3))  # type: ignore[arg-type]
    assert steps == ["seek", "clear queues", "resume ['in', 'in']", "resume flow", "ready"]
