"""The sweep skips people on days their findings cannot change; prove those days are right."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.calendar import ReleaseCalendar
from streams.rules import evaluate
from streams.rules.base import change_days
from tests.streams.factory import ev, release_date, state_of

CAL = ReleaseCalendar()
BASE = datetime(2026, 10, 1, 9, tzinfo=UTC)

OPTIONAL = [
    ev("custody.reception", BASE - timedelta(days=200), prison="MDI", status="sentenced",
       sentence_length_days=100),
    ev("case_note.accommodation", BASE, status="shelter"),
    ev("case_note.health", BASE, opiate_substitution_in_custody=True, medication_in_custody=True),
    ev("case_note.finance_id", BASE, id_held=True),
    ev("custody.transfer", BASE + timedelta(days=30), from_prison="MDI", to_prison="LEI"),
    ev("case_note.appointment", BASE, appointment_id="x", action="missed",
       at=BASE + timedelta(days=1)),
]


@settings(max_examples=150, deadline=None)
@given(
    release_in=st.integers(min_value=20, max_value=80),
    notified_days_before=st.integers(min_value=0, max_value=90),
    extras=st.lists(st.sampled_from(range(len(OPTIONAL))), unique=True),
    released_after=st.one_of(st.none(), st.integers(min_value=-3, max_value=3)),
    recalled_after=st.one_of(st.none(), st.integers(min_value=1, max_value=10)),
)
def test_findings_change_only_on_change_days(
    release_in, notified_days_before, extras, released_after, recalled_after,
) -> None:
    release = (BASE + timedelta(days=release_in)).date()
    notified = datetime.combine(release - timedelta(days=notified_days_before), time(18),
                                tzinfo=UTC)
    events = [release_date(release, min(notified, BASE + timedelta(days=release_in))),
              *(OPTIONAL[i] for i in extras)]
    if released_after is not None:
        out = datetime.combine(release + timedelta(days=released_after), time(10), tzinfo=UTC)
        events.append(ev("custody.release", out, prison="MDI"))
        if recalled_after is not None:
            events.append(ev("custody.recall", out + timedelta(days=recalled_after), prison="MDI"))
    state = state_of(*events)
    changes = set(change_days(state, CAL))
    start = date(2026, 9, 1)
    last = evaluate(state, _noon(start), CAL)
    for k in range(1, 200):
        day = start + timedelta(days=k)
        now = evaluate(state, _noon(day), CAL)
        if day.toordinal() in changes:
            last = now
        else:
            assert now == last, f"findings changed on {day}, not a change day"


def _noon(d: date) -> datetime:
    return CAL.at(d, 12)
