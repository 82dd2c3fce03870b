"""JSON Schemas for every event type, so publishers in any language can validate before sending.

Input schemas describe what a publisher must send (``event_id`` and ``recorded_at`` are
required on the wire even though Python callers may let them default). Output schemas describe
what consumers receive: every field is present in the JSON the system writes.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.events import INPUT_MODELS, input_family
from schemas.outputs import AlertEvent, DeadLetter, ReminderEvent, TaskEvent

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Envelope fields a publisher must always send (see ``Envelope._wire_needs_identity``).
WIRE_REQUIRED = ("event_id", "recorded_at")


@dataclass(frozen=True)
class EventType:
    name: str
    model: type[BaseModel]
    direction: str  # "input" or "output"
    family: str

    @property
    def file_name(self) -> str:
        return f"{self.name}.schema.json"


def _literal_types(model: type[BaseModel]) -> tuple[str, ...]:
    return typing.get_args(model.model_fields["type"].annotation)


def event_types() -> list[EventType]:
    """Every event type the project reads or writes, inputs first."""
    found = [EventType(t, m, "input", input_family(t)) for t, m in INPUT_MODELS.items()]
    for model, family in ((AlertEvent, "alerts"), (TaskEvent, "tasks"),
                          (ReminderEvent, "reminders"), (DeadLetter, "dead_letter")):
        found += [EventType(t, model, "output", family) for t in _literal_types(model)]
    return found


def schema_for(et: EventType) -> dict[str, Any]:
    mode = "validation" if et.direction == "input" else "serialization"
    schema = et.model.model_json_schema(mode=mode)
    props = schema["properties"]
    # One file per type: pin ``type`` to this one even where a model serves several types.
    props["type"] = {"const": et.name, "type": "string", "title": "Type"}
    required = set(schema.get("required", ()))
    required.add("type")
    if et.direction == "input":
        required.update(WIRE_REQUIRED)
    else:
        required.update(props)
    schema["required"] = [name for name in props if name in required]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:through-the-gate:event:{et.name}",
        "title": et.name,
        "x-direction": et.direction,
        "x-family": et.family,
        **schema,
    }


def export(directory: Path) -> list[Path]:
    """Write ``<type>.schema.json`` for every event type into ``directory``; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for et in event_types():
        path = directory / et.file_name
        path.write_text(json.dumps(schema_for(et), indent=2, sort_keys=False) + "\n")
        written.append(path)
    return written
