"""``ttg bench --quick`` runs every measurement end to end and reports each as a number.

No timing assertions: the machine is shared. The checks are that every figure was measured
(positive, finite), that the latency run saw a task for every event it published, and that the
detection run really waited for the worker to process every event.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPECTED = {
    "ceiling: consume + decode (aiokafka)": "events/s",
    "detection throughput / ceiling": "ratio",
    "Faust floor: decode-only agent / ceiling": "ratio",
    "publish -> task p50": "ms",
    "publish -> task p95": "ms",
    "publish -> task p99": "ms",
    "worker memory per person": "bytes",
    "bulk publish rate": "events/s",
}


@pytest.mark.slow
def test_quick_bench_reports_every_metric(broker, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "TTG_KAFKA_BOOTSTRAP": broker.bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "bench", "--quick", "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result
    metrics = {m["name"]: m for m in result["metrics"]}
    sweep = [name for name in metrics if name.startswith("sweep over")]
    assert len(sweep) == 1
    assert set(metrics) == set(EXPECTED) | set(sweep)
    for name, unit in EXPECTED.items():
        assert metrics[name]["unit"] == unit
    for m in metrics.values():
        assert math.isfinite(m["value"]) and m["value"] > 0, m
        if m["target"]:
            assert m["met"] == (m["value"] >= m["target"] if m["unit"] in ("events/s", "ratio")
                                else m["value"] <= m["target"])
    latency = metrics["publish -> task p99"]["detail"]
    assert latency["missing"] == 0 and latency["tasks_seen"] == latency["events"] > 0
    assert metrics["publish -> task p50"]["value"] <= metrics["publish -> task p99"]["value"]
    for name in ("detection throughput / ceiling", "Faust floor: decode-only agent / ceiling"):
        timed = metrics[name]["detail"]["events_timed"]
        assert 0 < timed <= result["config"]["events"]
    assert metrics["worker memory per person"]["detail"]["people"] > 1000
    assert metrics[sweep[0]]["detail"]["people"] > 1000
    assert result["load_average_start"] and result["cpus"] >= 1
