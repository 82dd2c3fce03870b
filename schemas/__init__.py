"""Event contracts: what prisons and agencies publish, and what the system emits.

Every event shares one envelope (:class:`schemas.envelope.Envelope`) and is told apart by
its ``type``; the unions in :mod:`schemas.events` validate any input event in one call.
"""

from schemas.codec import DecodeError, decode_input, encode
from schemas.common import Pathway, PathwayStatus, Person, Severity, StaffRole
from schemas.events import INPUT_MODELS, InputEvent, input_family

__all__ = [
    "DecodeError",
    "INPUT_MODELS",
    "InputEvent",
    "Pathway",
    "PathwayStatus",
    "Person",
    "Severity",
    "StaffRole",
    "decode_input",
    "encode",
    "input_family",
]
