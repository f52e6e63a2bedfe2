"""Settings from SOCIALCRM_* environment variables (and a .env file, if present)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOCIALCRM_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./socialcrm.db"
    host: str = "127.0.0.1"
    port: int = 8080
    #: Where the server is reachable from the platforms; shown to admins as the webhook URL.
    public_url: str = "http://127.0.0.1:8080"
    #: Folder for the generated key file when SOCIALCRM_SECRET_KEY is not set.
    data_dir: Path = Path(".")
    #: Fernet key (urlsafe base64, 32 bytes) for cookies and secrets at rest; never stored in the database.
    secret_key: SecretStr | None = None
    #: Secure-only cookies; turn off only for plain-HTTP development on loopback.
    secure_cookies: bool = False
    webhook_max_bytes: int = 1024 * 1024
    #: Default first-response targets, overridable per channel.
    sla_public_minutes: int = 60
    sla_private_minutes: int = 240
    outbox_interval_seconds: float = 1.0
    sla_tick_seconds: float = 30.0
    poll_interval_seconds: float = 60.0
    run_scheduler: bool = True
    log_level: str = "INFO"
    #: "text" (the default, for people) or "json" (one object per line, for log shippers).
    log_format: str = "text"
    #: Bearer token Prometheus sends to /metrics; without one /metrics is off (404).
    metrics_token: SecretStr | None = None
    extra_connectors: list[str] = Field(default_factory=list)


def normalize_database_url(url: str) -> str:
    """Accept plain postgresql:// and sqlite:// URLs and pick the async drivers we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
