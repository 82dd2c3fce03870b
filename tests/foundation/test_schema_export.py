"""`ttg schemas export` writes one usable JSON Schema per event type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from schemas import INPUT_MODELS, encode
from schemas.export import event_types, export
from schemas.outputs import DeadLetter

from .eventgen import event


def conforms(instance: Any, schema: dict, root: dict) -> list[str]:
    """A small JSON Schema subset (what pydantic emits for our models), enough to catch drift."""
    if "$ref" in schema:
        return conforms(instance, root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "anyOf" in schema:
        options = [conforms(instance, s, root) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else options[0]
    problems: list[str] = []
    kind = schema.get("type")
    types = {"object": dict, "string": str, "integer": int, "boolean": bool, "array": list,
             "null": type(None), "number": (int, float)}
    if kind and not isinstance(instance, types[kind]):
        return [f"{instance!r} is not {kind}"]
    if "const" in schema and instance != schema["const"]:
        problems.append(f"{instance!r} != {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        problems.append(f"{instance!r} not in enum")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        problems += [f"missing {r}" for r in schema.get("required", []) if r not in instance]
        if schema.get("additionalProperties") is False:
            problems += [f"unexpected {k}" for k in instance if k not in props]
        for k, v in instance.items():
            if k in props:
                problems += [f"{k}: {p}" for p in conforms(v, props[k], root)]
    return problems


def test_export_writes_a_schema_per_type(tmp_path: Path) -> None:
    written = export(tmp_path)
    names = {p.name for p in written}
    assert names == {f"{t}.schema.json" for t in INPUT_MODELS} | {
        f"{t}.schema.json" for t in (
            "alert.raised", "alert.updated", "alert.resolved", "task.created", "task.updated",
            "task.acknowledged", "task.done", "task.cancelled", "reminder.scheduled",
            "reminder.sent", "reminder.cancelled", "reminder.failed", "dead_letter")}
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["$schema"].endswith("2020-12/schema")
        assert schema["properties"]["type"]["const"] == path.name.removesuffix(".schema.json")
        assert "type" in schema["required"]


def test_input_schema_accepts_a_valid_event_and_rejects_a_broken_one(tmp_path: Path) -> None:
    export(tmp_path)
    schema = json.loads((tmp_path / "release_date.changed.schema.json").read_text())
    good = event(1, "release_date.changed")
    assert conforms(good, schema, schema) == []
    assert {"event_id", "recorded_at"} <= set(schema["required"])  # required on the wire
    broken = {**good, "surprise": 1, "type": "custody.release"}
    del broken["event_id"]
    problems = conforms(broken, schema, schema)
    assert any("event_id" in p for p in problems) and any("surprise" in p for p in problems)
    assert any("custody.release" in p for p in problems)


def test_output_schema_describes_what_we_write(tmp_path: Path) -> None:
    export(tmp_path)
    schema = json.loads((tmp_path / "dead_letter.schema.json").read_text())
    letter = json.loads(encode(DeadLetter(reason="r", original=b"\x00", topic="t")))
    assert conforms(letter, schema, schema) == []
    assert set(schema["required"]) == set(letter)


def test_cli_export_and_list(cli_app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["schemas", "export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*.schema.json"))) == len(event_types())
    listed = runner.invoke(cli_app, ["schemas", "list"])
    assert listed.exit_code == 0
    assert "custody.release\tinput\tcustody\tReleaseEvent" in listed.stdout
    assert "dead_letter\toutput" in listed.stdout
