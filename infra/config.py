"""All configuration, from the environment (prefix ``TTG_``) or a ``.env`` file, in one place.

Nothing else in the project reads ``os.environ`` for settings; pass a :class:`Settings` down.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where ``ttg up`` records what it started, so other ``ttg`` commands find the embedded broker.
STATE_DIR = Path(".ttg")
STACK_FILE = STATE_DIR / "stack.json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTG_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"

    # --- Kafka
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port]. Unset: use the broker `ttg up` started, or start one.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    topic_prefix: str = "ttg."
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    kafka_session_timeout_ms: int = Field(
        default=10_000, ge=1_000, description="Consumer-group session timeout."
    )
    producer_linger_ms: int = Field(
        default=20, ge=0, description="How long the event producer waits to fill a batch."
    )
    producer_batch_size: int = Field(
        default=1024 * 1024, ge=1024, description="Largest record batch per partition, bytes."
    )
    producer_ack_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a send waits for the broker's acknowledgement."
    )
    publish_workers: int = Field(
        default=2, ge=0, le=64,
        description="Processes validating lines for `ttg publish` (0: validate in-process).",
    )

    # --- Database
    database_url: str = "sqlite:///ttg.db"

    # --- Time and calendar
    timezone: str = "Europe/London"

    # --- Stream worker
    worker_sweep_seconds: float = Field(default=60.0, gt=0)
    faust_store: str = "memory://"
    faust_datadir: Path = Field(
        default=STATE_DIR / "faust", description="Where the Faust worker keeps local table data."
    )
    faust_web_port: int | None = Field(
        default=None, description="Serve Faust's web views on this port; unset disables them."
    )
    worker_clock_start: datetime | None = Field(
        default=None,
        description="Run the stream worker's clock from this moment instead of now (drills, "
        "demos, tests); time then flows normally.",
    )
    worker_replay: bool = Field(
        default=False,
        description="Replay mode: alerts whose due moment has already passed are marked "
        "historical rather than acted on.",
    )

    # --- Texts
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str | None = Field(
        default=None, description="Override the Twilio API base URL (test servers only)."
    )
    sms_allow_list: list[str] = Field(
        default_factory=list,
        description="Outside production only these E.164 numbers receive texts.",
    )
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "08:00"
    sms_evening_before_time: str = Field(
        default="18:00", pattern=r"^\d{2}:\d{2}$",
        description="Local time of the reminder the evening before an appointment.",
    )
    sms_hours_before: float = Field(
        default=2.0, gt=0, description="The on-the-day reminder goes this many hours before."
    )
    sms_max_attempts: int = Field(
        default=5, ge=1, description="Sends tried (timeouts, 429, 5xx) before a text is failed."
    )
    sms_retry_base_seconds: float = Field(
        default=30.0, gt=0, description="First retry delay; doubles each attempt (capped 1 h)."
    )
    sms_dispatch_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often the dispatch job sends due texts."
    )
    twilio_timeout_seconds: float = Field(
        default=10.0, gt=0, description="HTTP timeout of one Twilio API call."
    )
    notify_consumer_group: str = Field(
        default="ttg-notify", description="Consumer group of the notifications consumer."
    )
    notify_jobs_table: str = Field(
        default="notification_jobs",
        description="APScheduler job-store table of `ttg notify` (kept apart from the main "
        "scheduler's so neither runs the other's jobs).",
    )

    # --- Hub web app
    hub_host: str = "127.0.0.1"
    hub_port: int = 8000
    hub_public_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr("dev-only-change-me")
    session_max_age_seconds: int = 8 * 3600

    # --- Tasks, routing and the scheduler
    tasks_consumer_group: str = Field(
        default="ttg-tasks", description="Consumer group of the alerts -> tasks consumer."
    )
    tasks_max_attempts: int = Field(
        default=5, ge=1,
        description="Times the consumer retries one alert whose database work fails before it "
        "sends the alert to the dead-letter topic (stage 'apply') and moves on.",
    )
    escalate_urgent_after_minutes: float = Field(
        default=60.0, gt=0,
        description="An urgent task still open (not acknowledged) this long after it was created "
        "is escalated to its hub manager.",
    )
    escalation_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often the scheduler looks for tasks to escalate."
    )
    digest_time: str = Field(
        default="07:30", pattern=r"^\d{2}:\d{2}$",
        description="Local time (see `timezone`) of the daily digest of due and overdue tasks.",
    )
    digest_horizon_hours: float = Field(
        default=24.0, gt=0, description="The digest lists tasks due within this many hours."
    )
    scheduler_lease_seconds: float = Field(
        default=30.0, gt=0,
        description="How long the scheduler leader's lease lasts without renewal; a standby "
        "takes over once it expires.",
    )

    # --- Files
    hub_directory_file: Path | None = None

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def resolved_bootstrap(self) -> str | None:
        """The configured broker, else the one a running ``ttg up`` recorded, else ``None``."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        if STACK_FILE.exists():
            try:
                return json.loads(STACK_FILE.read_text()).get("kafka_bootstrap")
            except (OSError, ValueError):
                return None
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
