"""Bytes in, events out, with one clear reason when that fails."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from schemas.events import INPUT_ADAPTER, InputEvent

#: Bigger than any real event by two orders of magnitude; a hostile message stops here.
MAX_EVENT_BYTES = 256 * 1024


#: Validation context for bytes from Kafka or files: stricter than Python construction.
WIRE = {"wire": True}


class DecodeError(ValueError):
    """Raised with a reason a person can act on (first problems, field paths included)."""


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(event)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode_input(raw: bytes | str) -> InputEvent:
    """Validate one input event from JSON; raise :class:`DecodeError` saying why not."""
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_EVENT_BYTES:
        raise DecodeError(f"event is {len(data)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        return INPUT_ADAPTER.validate_json(text, context=WIRE)
    except ValidationError as exc:
        raise DecodeError(_explain(exc)) from None


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()
