"""Configuration, read once from `RAPPORT_*` environment variables (or a `.env` file)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]
# How the SMTP connection is secured: not at all, upgraded with STARTTLS, or TLS from the first byte.
SmtpSecurity = Literal["none", "starttls", "tls"]
_SMTP_DEFAULT_PORTS: dict[SmtpSecurity, int] = {"none": 25, "starttls": 587, "tls": 465}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAPPORT_", env_file=".env", extra="ignore")

    environment: Environment = "development"
    data_dir: Path = Path(".rapport")

    database_url: str | None = Field(
        default=None,
        description="postgresql+asyncpg://… ; unset means `rapport serve` starts an embedded server.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://… or unix://… ; unset means an embedded Redis.",
    )
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    database_read_pool_size: int = Field(
        default=20, ge=1, description="Connections per API process for single-record reads (asyncpg)"
    )
    database_statement_timeout_ms: int = Field(default=30_000, ge=0)

    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs JWTs. Required in production; generated under data_dir otherwise.",
    )
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    principal_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long an API process trusts a user's role and active flag before re-reading them",
    )
    secret_field_keys: SecretStr | None = Field(
        default=None,
        description="Keys for `secret` custom fields, `id:base64(32 bytes)` comma-separated, newest first; "
        "unset derives one from the secret key",
    )
    signup_enabled: bool = True
    password_min_length: int = Field(default=10, ge=8)
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost_kib: int = Field(default=65_536, ge=1024)

    max_request_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    idempotency_lock_timeout_ms: int = Field(default=10_000, ge=100)

    rate_limit_enabled: bool = True
    rate_limit_user_per_minute: int = Field(default=1200, ge=1)
    rate_limit_api_key_per_minute: int = Field(default=6000, ge=1)
    rate_limit_anonymous_per_minute: int = Field(default=60, ge=1)

    default_phone_region: str = Field(default="CN", min_length=2, max_length=2)
    exports_retention_hours: float = Field(default=24, gt=0, description="Export files are deleted after this")
    imports_max_file_mb: float = Field(default=256, gt=0, description="Largest file an import takes, in MB")
    imports_max_columns: int = Field(default=1000, ge=1, description="Columns a row of an imported file may have")
    imports_max_cell_chars: int = Field(default=65_536, ge=1, description="Longest cell of an imported file")
    imports_chunk_rows: int = Field(
        default=5000, ge=1, le=50_000, description="Rows an import writes (and commits) at a time"
    )
    imports_check_process: bool = Field(
        default=True,
        description="Check the rows of an import longer than a chunk in a second process, a chunk ahead of the"
        " one being written (about 95 MB more while it runs)",
    )
    imports_stale_after_seconds: float = Field(
        default=120, gt=0, description="A running import with no chunk committed for this long is resumed by the sweep"
    )
    scoring_rescore_parallelism: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Connections a full rescore of a large organisation's contacts splits its work over",
    )
    csv_max_rows: int = Field(
        default=10_000, ge=1, description="Records a list or search answers as CSV (`Accept: text/csv`) at most"
    )
    contracts_document_max_chars: int = Field(
        default=1_000_000, ge=1000, description="Longest contract document a template may render, in characters"
    )
    contracts_render_timeout_seconds: float = Field(
        default=2.0, gt=0, le=60, description="How long a contract template may take to render"
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON log lines; unset means JSON unless stderr is a terminal"
    )

    webhooks_allow_http: bool = Field(default=False, description="Allow plain-http webhook URLs (development only)")
    webhooks_allow_loopback: bool = Field(
        default=False, description="Allow webhook URLs on loopback addresses (development and tests only)"
    )
    webhooks_timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    webhooks_max_in_flight: int = Field(default=200, ge=1, description="Concurrent deliveries per relay")
    webhooks_max_in_flight_per_endpoint: int = Field(
        default=16, ge=1, description="Concurrent deliveries to one subscription, so a slow one cannot hold them all"
    )
    webhooks_disable_after_hours: float = Field(
        default=72.0, gt=0, description="A subscription failing without a success for this long is disabled"
    )
    webhooks_disable_min_failures: int = Field(
        default=10, ge=1, description="...and only once it has failed at least this many times in a row"
    )
    webhooks_per_organization: int = Field(default=50, ge=1)
    events_retention_days: int = Field(default=30, ge=1, description="Events (and their delivery logs) kept this long")

    smtp_host: str | None = Field(
        default=None, description="The SMTP server reminder e-mails go through; unset means no e-mail is sent or queued"
    )
    smtp_port: int | None = Field(
        default=None, ge=1, le=65535, description="Unset means 25, 587 or 465 as `smtp_security` suits"
    )
    smtp_security: SmtpSecurity = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from_address: str | None = Field(
        default=None, description="The envelope sender and From address; required with `smtp_host`"
    )
    smtp_from_name: str = Field(default="Rapport", max_length=100)
    smtp_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, description="Connecting, and sending one message, each take at most this long"
    )
    smtp_max_attempts: int = Field(
        default=8, ge=1, le=20, description="Attempts at sending a message before it is given up as failed"
    )

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(default=1, ge=1)
    worker_max_jobs: int = Field(default=10, ge=1)
    queue_name: str = "rapport:queue"

    @field_validator("default_phone_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @field_validator("smtp_from_address")
    @classmethod
    def _valid_sender(cls, value: str | None) -> str | None:
        # The syntax only: the host the settings are read on need not resolve the sender's domain.
        if value is None:
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise ValueError(f"not an e-mail address: {error}") from None

    @model_validator(mode="after")
    def _mail_needs_a_sender(self) -> Settings:
        if self.smtp_host is not None and self.smtp_from_address is None:
            raise ValueError("RAPPORT_SMTP_FROM_ADDRESS must be set when RAPPORT_SMTP_HOST is")
        return self

    @model_validator(mode="after")
    def _production_needs_a_secret(self) -> Settings:
        if self.environment == "production":
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(key) < 32:
                raise ValueError("RAPPORT_SECRET_KEY must be set to at least 32 characters in production")
        return self

    @property
    def mail_enabled(self) -> bool:
        return self.smtp_host is not None

    def smtp_port_or_default(self) -> int:
        return self.smtp_port or _SMTP_DEFAULT_PORTS[self.smtp_security]

    def secret_field_key_ring(self) -> str | None:
        return self.secret_field_keys.get_secret_value() if self.secret_field_keys else None

    def jwt_secret(self) -> str:
        """The signing secret; outside production one is generated once and kept in data_dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
