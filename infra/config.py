"""All configuration, from the environment (prefix ``TTG_``) or a ``.env`` file, in one place.

Nothing else in the project reads ``os.environ`` for settings; pass a :class:`Settings` down.
"""

from __future__ import annotations

import json
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

    # --- Database
    database_url: str = "sqlite:///ttg.db"

    # --- Time and calendar
    timezone: str = "Europe/London"

    # --- Stream worker
    worker_sweep_seconds: float = Field(default=60.0, gt=0)
    faust_store: str = "memory://"

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

    # --- Hub web app
    hub_host: str = "127.0.0.1"
    hub_port: int = 8000
    hub_public_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr("dev-only-change-me")
    session_max_age_seconds: int = 8 * 3600

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
