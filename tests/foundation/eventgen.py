"""Valid input events as JSON lines, varied across families and people, for publish tests."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

_TYPES = ("release_date.changed", "custody.release", "case_note.accommodation")


def prison_number(i: int) -> str:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"{letters[i % 24]}{i % 10000:04d}{letters[(i // 24) % 24]}{letters[(i // 576) % 24]}"


def event(i: int, kind: str | None = None, person: int | None = None) -> dict:
    kind = kind or _TYPES[i % len(_TYPES)]
    payload: dict
    if kind == "release_date.changed":
        payload = {"new_date": f"2027-0{1 + i % 9}-1{i % 10}",
                   "release_type": "conditional_release"}
    elif kind == "custody.release":
        payload = {"prison": "MDI", "local_authority": "Cambridgeshire"}
    else:
        payload = {"status": "unverified", "local_authority": "Cambridgeshire"}
    return {
        "event_id": str(uuid.UUID(int=random.Random(i).getrandbits(128))),
        "type": kind,
        "schema_version": 1,
        "occurred_at": "2026-11-20T10:00:00+00:00",
        "recorded_at": "2026-11-20T10:00:05+00:00",
        "source": "MDI",
        "person": {"prison_number": prison_number(i if person is None else person)},
        "payload": payload,
    }


def lines(n: int, start: int = 0) -> Iterator[bytes]:
    for i in range(start, start + n):
        yield json.dumps(event(i)).encode() + b"\n"
