"""Topic names, in one place. Input families are keyed by prison number."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import Settings


@dataclass(frozen=True)
class Topics:
    release_dates: str
    custody: str
    case_notes: str
    alerts: str
    tasks: str
    reminders: str
    dead_letter: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        t = settings.topic
        return cls(
            release_dates=t("release-dates"),
            custody=t("custody-events"),
            case_notes=t("case-notes"),
            alerts=t("alerts"),
            tasks=t("tasks"),
            reminders=t("reminders"),
            dead_letter=t("dead-letter"),
        )

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.release_dates, self.custody, self.case_notes)

    def all(self) -> tuple[str, ...]:
        return (*self.inputs, self.alerts, self.tasks, self.reminders, self.dead_letter)

    def for_family(self, family: str) -> str:
        return {
            "release_dates": self.release_dates,
            "custody": self.custody,
            "case_notes": self.case_notes,
        }[family]
