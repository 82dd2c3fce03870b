"""A reproducible, realistic cohort of people leaving prison, as the events prisons publish.

The shape follows the domain brief: release dates spread over the coming months with about a
third on Fridays, dates that move (some at short notice), transfers, case notes across the seven
pathways, appointments with some missed, and recalls. The same seed gives the same stream, byte
for byte, so demos, journeys, benchmarks and fault-injection runs can be compared.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

PRISONS = ("MDI", "LEI", "HMI", "DWI", "BMI", "NMI", "WDI", "LPI", "PVI", "WEI")
LOCAL_AUTHORITIES = (
    "Cambridgeshire",
    "Peterborough",
    "Norfolk",
    "Suffolk",
    "Leeds",
    "Bradford",
    "Hull",
    "Sheffield",
)
STREETS = ("High", "Mill", "Station", "Church")
RELEASE_TYPES = (
    ("conditional_release", 0.55),
    ("automatic_release", 0.15),
    ("home_detention_curfew", 0.12),
    ("parole", 0.04),
    ("early_release_scheme", 0.06),
    ("end_of_sentence", 0.06),
    ("rerelease_after_recall", 0.02),
)


@dataclass(frozen=True)
class SimulationConfig:
    people: int = 100
    seed: int = 1
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    horizon_days: int = 120  # release dates spread over this many days after ``now``
    history_days: int = 90  # events start this long before ``now``
    include_future: bool = False  # also emit events dated after ``now`` (replays, benchmarks)
    local_authorities: tuple[str, ...] = LOCAL_AUTHORITIES
    prisons: tuple[str, ...] = PRISONS
    source: str = "SIM"


def _weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def prison_number(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    first, digits = rng.choice(letters), rng.randrange(10_000)
    return f"{first}{digits:04d}{rng.choice(letters)}{rng.choice(letters)}"


def _release_date(rng: random.Random, today: date, horizon: int) -> date:
    """About a third of releases fall on a Friday, as reported for England and Wales."""
    d = today + timedelta(days=rng.randrange(1, horizon))
    if d.weekday() >= 5:
        d -= timedelta(days=d.weekday() - rng.randrange(0, 4))  # no weekend releases: Mon-Thu
    if rng.random() < 0.22:  # with the 1 in 7 already on a Friday, about a third in all
        d += timedelta(days=(4 - d.weekday()) % 7)
    return d


class _Person:
    """Builds one person's events; ``emit`` keeps them in the order they happen."""

    def __init__(self, rng: random.Random, cfg: SimulationConfig, pn: str) -> None:
        self.rng, self.cfg, self.pn = rng, cfg, pn
        self.crn = (
            f"{rng.choice('CDEX')}{rng.randrange(1_000_000):06d}" if rng.random() < 0.8 else None
        )
        self.events: list[dict[str, Any]] = []

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(
        self, at: datetime, etype: str, payload: dict[str, Any], source: str | None = None
    ) -> None:
        # Prison systems record an event a little after it happens.
        recorded = at + timedelta(seconds=self.rng.randrange(5, 600))
        person: dict[str, Any] = {"prison_number": self.pn}
        if self.crn:
            person["crn"] = self.crn
        self.events.append(
            {
                "event_id": self._id(),
                "type": etype,
                "schema_version": 1,
                "occurred_at": at.isoformat(),
                "recorded_at": recorded.isoformat(),
                "source": source or self.cfg.source,
                "person": person,
                "payload": payload,
            }
        )


def _at(d: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(d, time(hour, minute), tzinfo=UTC)


def person_events(rng: random.Random, cfg: SimulationConfig, pn: str) -> list[dict[str, Any]]:
    p = _Person(rng, cfg, pn)
    today = cfg.now.date()
    prison = rng.choice(cfg.prisons)
    la = rng.choice(cfg.local_authorities)
    release = _release_date(rng, today, cfg.horizon_days)
    short = rng.random() < 0.45
    sentence_days = rng.randrange(30, 365) if short else rng.randrange(365, 365 * 8)
    start = cfg.now - timedelta(days=cfg.history_days)
    t = start + timedelta(hours=rng.randrange(0, 24 * 20))

    p.emit(
        t,
        "custody.reception",
        {
            "prison": prison,
            "status": "sentenced",
            "sentence_length_days": sentence_days,
            "statutory_supervision": not (short and rng.random() < 0.5),
            "female": rng.random() < 0.05,
            "mappa_level": rng.choice([None, None, None, 1, 2]),
        },
        source=prison,
    )
    release_type = _weighted(rng, RELEASE_TYPES)
    notified = min(cfg.now, _at(release, 9) - timedelta(days=rng.randrange(20, 80)))
    notified = max(notified, t + timedelta(hours=1))
    p.emit(
        notified,
        "release_date.changed",
        {
            "new_date": release.isoformat(),
            "previous_date": None,
            "release_type": release_type,
            "reason": "sentence calculation",
            "recalculated_by": "OMU",
        },
        source=prison,
    )

    # Dates move: some later, some earlier, a few at short notice (overnight).
    roll = rng.random()
    if roll < 0.12:
        moved = release + timedelta(days=rng.choice([-10, -5, 7, 14, 21]))
        if moved.weekday() >= 5:
            moved -= timedelta(days=moved.weekday() - 4)
        when = max(notified + timedelta(days=1), _at(min(release, moved), 17) - timedelta(days=12))
        p.emit(
            when,
            "release_date.changed",
            {
                "new_date": moved.isoformat(),
                "previous_date": release.isoformat(),
                "release_type": release_type,
                "reason": "recalculation",
                "recalculated_by": "OMU",
            },
            source=prison,
        )
        release = moved
    elif roll < 0.16:
        moved = release - timedelta(days=rng.choice([1, 2, 3]))
        if moved.weekday() >= 5:
            moved -= timedelta(days=moved.weekday() - 4)
        when = _at(moved, 0) - timedelta(hours=rng.choice([6, 14, 30]))
        p.emit(
            max(when, notified + timedelta(hours=1)),
            "release_date.changed",
            {
                "new_date": moved.isoformat(),
                "previous_date": release.isoformat(),
                "release_type": release_type,
                "reason": "early release decision",
                "recalculated_by": "OMU",
            },
            source=prison,
        )
        release = moved
    release_at = _at(release, 8)

    if rng.random() < 0.10:
        to = rng.choice([x for x in cfg.prisons if x != prison])
        when = release_at - timedelta(days=rng.randrange(5, 60))
        p.emit(
            max(when, notified),
            "custody.transfer",
            {"from_prison": prison, "to_prison": to},
            source=to,
        )
        prison = to

    plan_from = notified + timedelta(days=1)

    def when_before(min_days: int, max_days: int) -> datetime:
        w = release_at - timedelta(
            days=rng.randrange(min_days, max_days), hours=rng.randrange(0, 8)
        )
        return max(w, plan_from)

    # Accommodation: about a third have nowhere to live at first.
    acc = _weighted(
        rng, (("confirmed", 0.55), ("none", 0.25), ("shelter", 0.08), ("unverified", 0.12))
    )
    p.emit(
        when_before(20, 60),
        "case_note.accommodation",
        {
            "status": acc,
            "local_authority": la,
            "address": None
            if acc == "none"
            else f"{rng.randrange(1, 200)} {rng.choice(STREETS)} Street",
        },
        source=prison,
    )
    if acc != "confirmed" and rng.random() < 0.5:
        p.emit(
            when_before(1, 15),
            "case_note.accommodation",
            {
                "status": "confirmed",
                "local_authority": la,
                "address": f"{rng.randrange(1, 200)} Park Road",
            },
            source=prison,
        )

    p.emit(
        when_before(5, 40),
        "case_note.finance_id",
        {
            "benefit_claim_made": rng.random() < 0.6,
            "id_held": rng.random() < 0.7,
            "bank_account": rng.random() < 0.6,
        },
        source=prison,
    )
    if rng.random() < 0.3:
        p.emit(
            when_before(2, 30),
            "case_note.health",
            {
                "opiate_substitution_in_custody": True,
                "community_prescriber_booked": rng.random() < 0.5,
                "gp_registered": rng.random() < 0.6,
            },
            source=prison,
        )
    if rng.random() < 0.65:
        p.emit(
            when_before(10, 50),
            "case_note.contact",
            {
                "mobile": f"+447700900{rng.randrange(1000):03d}",
                "sms_consent": rng.random() < 0.85,
                "consent_recorded_by": "OMU",
            },
            source=prison,
        )
    if short and rng.random() < 0.5:
        p.emit(
            when_before(3, 30),
            "case_note.mentor",
            {
                "assigned": True,
                "organisation": rng.choice(["St Giles Trust", "Nacro", "Shelter"]),
            },
            source=prison,
        )
    for pathway in (
        "attitudes_thinking_behaviour",
        "children_families_communities",
        "education_skills_work",
    ):
        if rng.random() < 0.4:
            p.emit(
                when_before(5, 50),
                "case_note.pathway_status",
                {
                    "pathway": pathway,
                    "status": rng.choice(["in_progress", "support_required", "done"]),
                },
                source=prison,
            )

    # First appointment with the supervising officer on release day, for most.
    appts: list[tuple[str, datetime]] = []
    if rng.random() < 0.7:
        first = _at(release, rng.choice([11, 13, 14, 15]))
        appts.append((f"{pn}-1", first))
        p.emit(
            when_before(2, 20),
            "case_note.appointment",
            {
                "appointment_id": f"{pn}-1",
                "action": "booked",
                "kind": "supervision",
                "at": first.isoformat(),
                "place": f"{la} probation office",
                "with_whom": "duty officer",
                "owner_role": "probation_practitioner",
            },
            source="IOM",
        )
    for n in range(2, 2 + rng.randrange(0, 3)):
        at = _at(release + timedelta(days=7 * (n - 1)), rng.choice([10, 14]))
        appts.append((f"{pn}-{n}", at))
        p.emit(
            release_at + timedelta(hours=6),
            "case_note.appointment",
            {
                "appointment_id": f"{pn}-{n}",
                "action": "booked",
                "kind": "supervision",
                "at": at.isoformat(),
                "place": f"{la} probation office",
                "with_whom": "offender manager",
                "owner_role": "probation_practitioner",
            },
            source="IOM",
        )

    recalled = rng.random() < 0.05
    if not recalled:
        p.emit(
            release_at,
            "custody.release",
            {
                "prison": prison,
                "destination_address": None,
                "local_authority": la,
                "on_licence": release_type != "end_of_sentence",
                "release_type": release_type,
            },
            source=prison,
        )
        for appt_id, at in appts:
            action = "missed" if rng.random() < 0.18 else "attended"
            p.emit(
                at + timedelta(hours=2),
                "case_note.appointment",
                {
                    "appointment_id": appt_id,
                    "action": action,
                    "kind": "supervision",
                },
                source="IOM",
            )
        if rng.random() < 0.06:
            p.emit(
                release_at + timedelta(days=rng.randrange(10, 40)),
                "custody.recall",
                {
                    "reason": "licence breach",
                    "prison": prison,
                },
                source=prison,
            )
    else:
        p.emit(
            release_at - timedelta(days=rng.randrange(1, 10)),
            "custody.court_production",
            {
                "prison": prison,
                "court": f"{la} Crown Court",
            },
            source=prison,
        )
    return p.events


def simulate(cfg: SimulationConfig) -> Iterator[dict[str, Any]]:
    """All events for the cohort, in the order they happened (then by id, for stability)."""
    rng = random.Random(cfg.seed)
    seen: set[str] = set()
    events: list[dict[str, Any]] = []
    for _ in range(cfg.people):
        pn = prison_number(rng)
        while pn in seen:
            pn = prison_number(rng)
        seen.add(pn)
        events.extend(person_events(rng, cfg, pn))
    if not cfg.include_future:
        events = [e for e in events if e["occurred_at"] <= cfg.now.isoformat()]
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    yield from events


def to_json_lines(events: Iterator[dict[str, Any]]) -> Iterator[str]:
    for e in events:
        yield json.dumps(e, separators=(",", ":"))
