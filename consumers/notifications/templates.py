"""Every text the system sends, in one reviewable place.

Rules for texts to a person (checked by tests/notifications/test_templates.py):
- plain, short words; at most two SMS segments (GSM-7: 160 / 153 per part; UCS-2: 70 / 67);
- no offence, health or "probation" wording: a phone can be seen by others, so a text never says
  why someone has appointments ("avoid the words 'mental health'" [PA]); free text from staff
  (place, who to ask for) is scrubbed of such words and trimmed to fit;
- every text ends with the STOP line.
Staff texts name the prison number and task, never the person's name or health details.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

MAX_SEGMENTS = 2
STOP_LINE = "Reply STOP to stop texts."

# ---------------------------------------------------------------- SMS segment counting

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")  # each costs two septets (escape + char)

#: Look-alike punctuation that would silently switch a text to UCS-2 (and halve its length).
_TO_GSM = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-",
                         "…": "...", "\u00a0": " "})


def is_gsm7(text: str) -> bool:
    return all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text)


def segments(text: str) -> int:
    """How many SMS parts ``text`` takes (concatenated parts lose room to the UDH)."""
    if not text:
        return 1
    if is_gsm7(text):
        septets = sum(2 if c in _GSM_EXTENSION else 1 for c in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


# ---------------------------------------------------------------- wording for people

_SENSITIVE = re.compile(
    r"\b(drugs?\s+and\s+alcohol|probation|offender|offenders|offence|offences|offense|offending|prison|prisons|"
    r"licence|license|recall|parole|IOM|mental\s+health|mental|drugs?|alcohol|substance|"
    r"methadone|addiction|rehab)\b",
    re.IGNORECASE,
)

#: What each appointment kind is called in a text: nothing that says health or supervision.
KIND_WORDS: dict[str, str] = {
    "supervision": "your appointment",
    "jobcentre": "your Jobcentre appointment",
    "housing": "your housing appointment",
    "prescriber": "your appointment",
    "gp": "your appointment",
    "mentor": "your mentor meeting",
    "other": "your appointment",
}


def clean_free_text(value: str | None, limit: int = 60) -> str:
    """Staff-typed text made safe for a person's phone: sensitive words out, GSM-7, bounded."""
    if not value:
        return ""
    text = _SENSITIVE.sub("", value.translate(_TO_GSM))
    text = "".join(c if (c in _GSM_BASIC or c in _GSM_EXTENSION) and c not in "\r\n" else " "
                   for c in text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", text))
    text = re.sub(r"\s*,\s*(,\s*)+", ", ", text)
    text = re.sub(r"\s{2,}", " ", text).strip(" ,.;:-")
    if len(text) > limit:
        cut = text[:limit]
        text = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,.;:-(")
    return text


@dataclass(frozen=True)
class AppointmentText:
    """What a text may say about an appointment."""

    kind: str
    at: datetime
    place: str | None = None
    with_whom: str | None = None


def when(at: datetime, tz: str) -> tuple[str, str]:
    """("Tue 24 Nov", "10:30") in the person's local time."""
    local = at.astimezone(ZoneInfo(tz))
    return f"{local:%a} {local.day} {local:%b}", f"{local:%H:%M}"


def _fit(build: callable, appt: AppointmentText) -> str:  # type: ignore[valid-type]
    # Trim the free text until the whole text fits in two parts; the fixed wording always does.
    for limit in (60, 40, 25, 0):
        place = clean_free_text(appt.place, limit) if limit else ""
        who = clean_free_text(appt.with_whom, limit) if limit else ""
        text = build(place, who)
        if segments(text) <= MAX_SEGMENTS:
            return text
    raise AssertionError("a fixed template exceeds two SMS segments")  # caught by the tests


def _where(place: str, who: str) -> str:
    return (f" at {place}" if place else "") + "." + (f" Ask for {who}." if who else "")


def welcome() -> str:
    return (
        "Hello from the Through the Gate team. We will text you reminders of your "
        "appointments. Reply HELP for help. " + STOP_LINE
    )


def day_of_release(appt: AppointmentText, tz: str) -> str:
    day, time = when(appt.at, tz)
    what = KIND_WORDS.get(appt.kind, "your appointment")
    return _fit(
        lambda place, who: (
            f"Welcome back. First, {what}: {day} at {time}{_where(place, who)} "
            f"Reply C to confirm. {STOP_LINE}"
        ),
        appt,
    )


def evening_before(appt: AppointmentText, tz: str) -> str:
    day, time = when(appt.at, tz)
    what = KIND_WORDS.get(appt.kind, "your appointment")
    return _fit(
        lambda place, who: (
            f"Reminder: {what} is tomorrow, {day} at {time}{_where(place, who)} "
            f"Reply C to confirm. {STOP_LINE}"
        ),
        appt,
    )


def hours_before(appt: AppointmentText, tz: str) -> str:
    _, time = when(appt.at, tz)
    what = KIND_WORDS.get(appt.kind, "your appointment")
    return _fit(
        lambda place, who: f"Reminder: {what} is today at {time}{_where(place, who)} {STOP_LINE}",
        appt,
    )


def changed(appt: AppointmentText, tz: str) -> str:
    day, time = when(appt.at, tz)
    what = KIND_WORDS.get(appt.kind, "your appointment")
    return _fit(
        lambda place, who: (
            f"Change: {what} is now {day} at {time}{_where(place, who)} "
            f"Reply C to confirm. {STOP_LINE}"
        ),
        appt,
    )


def cancelled(appt: AppointmentText, tz: str) -> str:
    day, time = when(appt.at, tz)
    what = KIND_WORDS.get(appt.kind, "your appointment")
    return (f"{what[0].upper()}{what[1:]} on {day} at {time} is cancelled. We will text you "
            f"if there is a new time. {STOP_LINE}")


def help_reply() -> str:
    return (
        "These texts remind you of your appointments. For help, call the number on your "
        "appointment letter. Reply START to restart texts. " + STOP_LINE
    )


def confirmed_reply(appt: AppointmentText | None, tz: str) -> str:
    if appt is None:
        return "Thanks. We have no appointment to confirm. " + STOP_LINE
    day, time = when(appt.at, tz)
    return f"Thanks, that is confirmed: {day} at {time}. " + STOP_LINE


# ---------------------------------------------------------------- staff texts


def staff_urgent_task(task_id: str, prison_number: str, need: str, due: datetime, tz: str) -> str:
    day, time = when(due, tz)
    text = (f"TTG urgent task {task_id} for {prison_number}: {clean_free_text(need, 40)}, due "
            f"{day} {time}. Open the hub to act.")
    return text


def staff_digest(hub: str, on: date, due: int, overdue: int) -> str:
    return (f"TTG {hub} digest for {on:%a} {on.day} {on:%b}: {due} task(s) due, {overdue} "
            f"overdue. Open the hub for details.")


def could_not_text(kind: str, why: str) -> str:
    """Reason line of the task/issue for the owner (not sent by SMS)."""
    return f"Could not text the person ({kind.replace('_', ' ')}): {why}"
