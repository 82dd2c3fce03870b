"""What the worker's table holds per person: the record as compressed JSON, beside the two
numbers the sweep reads without unpacking it.

About 100,000 people stay in the worker's memory. As pydantic objects a record costs about
4.4 KB; its compact JSON about 1.4 KB; LZ4 of that JSON against a preset dictionary of typical
records, about 0.45 KB. The packed bytes are exactly what the changelog carries, so packing
replaces the changelog's serialisation rather than adding one. The sweep compares
``next_change`` with today and unpacks only the few people whose findings can have moved.

Why LZ4 with a dictionary: records are small and alike, so most of what makes them compressible
is what they share with each other. Against the dictionary LZ4 compresses one about five times
faster, and unpacks it five times faster, than zlib level 1 did without one (the format before,
``P1``, still loads), and makes it a third smaller.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import MutableMapping
from pathlib import Path

import lz4.block

from schemas.outputs import AlertEvent
from streams.person import Evaluator, PersonRecord, sweep_records

#: Changelog value: magic, then next_change (>i) and partition (>h, -1 for none), then the
#: compressed JSON. ``P2``: LZ4 block (size stored) against :data:`DICTIONARY`; ``P1``: zlib.
MAGIC = b"P2"
ZLIB_MAGIC = b"P1"
_HEADER = struct.Struct(">2sih")
#: 8 KB of simulated people's records (fictional): a 64 KB one packs 10 % smaller but three
#: times slower, since LZ4 indexes the whole dictionary for every value. Never edit it: every
#: ``P2`` value in every changelog needs exactly these bytes back (tests/streams/test_batch.py
#: pins its digest). A better dictionary would be a new file and a new magic.
DICTIONARY = Path(__file__).with_name("packing-dictionary-1.txt").read_bytes()


def _compress(raw: bytes) -> bytes:
    return lz4.block.compress(raw, store_size=True, dict=DICTIONARY)  # type: ignore[no-any-return]


def _decompress(blob: bytes) -> bytes:
    return lz4.block.decompress(blob, dict=DICTIONARY)  # type: ignore[no-any-return]


class Packed:
    __slots__ = ("blob", "next_change", "partition")

    def __init__(self, next_change: int, partition: int | None, blob: bytes) -> None:
        self.next_change = next_change
        self.partition = partition
        self.blob = blob

    @classmethod
    def of(cls, record: PersonRecord) -> Packed:
        return cls(record.next_change, record.partition, _compress(record.dump_json()))

    def unpack(self) -> PersonRecord:
        return PersonRecord.load_json(_decompress(self.blob))

    def to_bytes(self) -> bytes:
        partition = -1 if self.partition is None else self.partition
        return _HEADER.pack(MAGIC, self.next_change, partition) + self.blob

    @classmethod
    def from_bytes(cls, raw: bytes) -> Packed:
        """A changelog value. What older workers wrote loads too: zlib (``P1``), and plain JSON
        from before packing; both are packed anew."""
        magic = raw[:2]
        if magic not in (MAGIC, ZLIB_MAGIC):
            return cls.of(PersonRecord.load_json(raw))
        _, next_change, partition = _HEADER.unpack_from(raw)
        blob = raw[_HEADER.size:]
        if magic == ZLIB_MAGIC:
            blob = _compress(zlib.decompress(blob))
        return cls(next_change, None if partition < 0 else partition, blob)

    def __repr__(self) -> str:
        return (f"Packed(next_change={self.next_change}, partition={self.partition}, "
                f"{len(self.blob)} bytes)")


def sweep_packed(
    evaluator: Evaluator, store: MutableMapping[str, Packed], partitions: set[int] | None = None,
) -> list[tuple[str, PersonRecord, list[AlertEvent]]]:
    """The clock's sweep over a packed table; returns the people whose alerts changed (to be
    written and announced). For the rest only the wake-up day moved: that is updated in place,
    because repacking would cost more than the evaluation. Their packed JSON keeps an older
    ``next_change``; the header is what the sweep reads, and the next event recomputes both."""
    changed = sweep_records(evaluator, store.items(), partitions, unpack=Packed.unpack)
    alerted = []
    for key, record, events in changed:
        if events:
            alerted.append((key, record, events))
        else:
            store[key].next_change = record.next_change
    return alerted


__all__ = ["Packed", "sweep_packed"]
