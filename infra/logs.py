"""Logging setup shared by every service.

Personal data (names, phone numbers) must never reach logs; :class:`RedactingFilter` masks
anything that looks like a phone number as a last line of defence, but callers should log
prison numbers and ids, not people.
"""

from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<![\w-])(?:\+44\s?7\d{3}|\(?07\d{3}\)?)\s?\d{3}\s?\d{3}(?!\d)|\+\d{10,14}")


def redact(text: str) -> str:
    return _PHONE.sub("[phone]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


#: Libraries kept at WARNING whatever the level: at DEBUG some of them log message bytes.
LIBRARIES = ("kafka", "aiokafka", "faust", "mode", "apscheduler", "httpx", "twilio")


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
