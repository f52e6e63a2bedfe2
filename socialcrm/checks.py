"""What `socialcrm check` and `/readyz` look at: the database, the schema, every channel.

The failures admins report most are silent (a revoked token, a Telegram webhook stuck with
an error only `getWebhookInfo` shows). Each check here turns one of them into a line a person
reads, and `needs_attention` into an exit code a cron job or a deploy script can act on.
The core never names a connector: optional probes are found with `hasattr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm import health, models
from socialcrm.channels import STOPPED
from socialcrm.config import Settings
from socialcrm.connector import Connector
from socialcrm.db import make_engine
from socialcrm.errors import AuthFailed, RateLimited, SendError, TransientError
from socialcrm.logs import redact
from socialcrm.migrate import current_revision, head_revision
from socialcrm.registry import Registry
from socialcrm.vault import Vault

channel_t = models.Channel.__table__
#: Channels an admin stopped on purpose: not called, and their health is no warning.
#: Per platform call; a check that hangs is itself a finding ("cannot connect").
CHECK_TIMEOUT = 15.0


@dataclass(frozen=True)
class Finding:
    """One thing checked: what, whether it is fine, and a sentence for the admin."""

    subject: str
    ok: bool
    message: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.subject}: {self.message}"


def needs_attention(findings: list[Finding]) -> bool:
    return any(not f.ok for f in findings)


# -- database and schema ------------------------------------------------------------------

async def check_database(engine: AsyncEngine) -> list[Finding]:
    """Reachable, then migrated to head; the second is skipped when the first fails."""
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to answer means "not reachable"
        # The driver's text may quote the URL with its password: only the error type, redacted.
        return [Finding("database", False, f"unreachable ({redact(type(exc).__name__)})")]
    return [Finding("database", True, "ok"), await check_migrations(engine)]


async def check_migrations(engine: AsyncEngine) -> Finding:
    current, head = await current_revision(engine), head_revision()
    if current is None:
        return Finding("migrations", False, "not applied: run `socialcrm migrate`")
    if current != head:
        return Finding("migrations", False, f"at {current}, the code needs {head}: run `socialcrm migrate`")
    return Finding("migrations", True, "current")


# -- channels -------------------------------------------------------------------------------

async def check_channels(engine: AsyncEngine, registry: Registry, vault: Vault,
                         http: httpx.AsyncClient) -> list[Finding]:
    """Every channel's credentials, and its webhook subscription where the connector can tell."""
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(channel_t).order_by(channel_t.c.id))).all()
    findings: list[Finding] = []
    for row in rows:
        findings.extend(await check_channel(row, registry, vault, http))
    return findings


def channel_subject(row: Any) -> str:
    return f"channel {row.id} ({row.name}, {row.connector})"


async def check_channel(row: Any, registry: Registry, vault: Vault, http: httpx.AsyncClient) -> list[Finding]:
    subject = channel_subject(row)
    if row.status in STOPPED:
        return [Finding(subject, True, f"{row.status}: not checked")]
    connector = load_connector(row, registry, vault, http)
    if isinstance(connector, str):
        return [Finding(subject, False, f"connector cannot load: {connector}")]
    findings = [await check_credentials(subject, connector)]
    if findings[0].ok and hasattr(connector, "webhook_info"):
        findings.append(await check_webhook(subject, connector, polled=row.poll_enabled))
    if findings[0].ok:
        access = await health.platform_access(connector)   # token expiry, webhook subscription
        findings += [Finding(subject, False, w) for w in (access.warnings if access else [])]
    return findings


def load_connector(row: Any, registry: Registry, vault: Vault, http: httpx.AsyncClient) -> Connector | str:
    """The channel's connector, or why it cannot be built (never quoting a setting's value)."""
    if row.connector not in registry:
        return redact(registry.broken.get(row.connector, f"no connector {row.connector!r} is installed"))
    try:
        values = {**row.settings, **vault.decrypt(row.secrets_encrypted)}
        return registry.get(row.connector).from_settings(values, http)
    except ValidationError as exc:
        # pydantic quotes the rejected input, which may be a token: name the fields only.
        return "bad settings: " + ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
    except Exception as exc:  # noqa: BLE001 - a plugin's bug must become a finding, not a crash
        return f"{type(exc).__name__} (is the secret key the one the channel was saved with?)"


async def check_credentials(subject: str, connector: Connector) -> Finding:
    try:
        await connector.check()
    except AuthFailed as exc:
        return Finding(subject, False, f"needs re-authorisation: {redact(str(exc))}")
    except (TransientError, RateLimited) as exc:
        return Finding(subject, False, f"cannot connect: {redact(str(exc))}")
    except SendError as exc:
        return Finding(subject, False, f"credentials check failed: {redact(str(exc))}")
    return Finding(subject, True, "credentials accepted")


async def check_webhook(subject: str, connector: Any, polled: bool = False) -> Finding:
    """The platform's own view of our webhook (Telegram's getWebhookInfo); a polled channel
    needs no webhook URL, but an error the platform saw still counts."""
    try:
        info = await connector.webhook_info()
    except SendError as exc:
        return Finding(subject, False, f"webhook status unavailable: {redact(str(exc))}")
    pending = info.get("pending_update_count", 0)
    last_error = info.get("last_error_message")
    if last_error:
        return Finding(subject, False, f"webhook: {pending} pending, last error: {redact(str(last_error))}")
    if "url" in info and not info["url"] and not polled:
        return Finding(subject, False, f"webhook: not registered ({pending} pending)")
    return Finding(subject, True, f"webhook: {pending} pending, no error")


# -- health (the same warnings the admin pages show) -------------------------------------------

async def health_warnings(engine: AsyncEngine) -> list[str]:
    """"Channel X: ..." for each health warning of a channel that is not stopped on purpose.
    One source for the admin pages' banner and for `socialcrm check`."""
    found = await health.channel_health(engine)
    return [f"Channel {h.name}: {w}" for h in found if h.status not in STOPPED for w in h.warnings]


async def check_health(engine: AsyncEngine) -> list[Finding]:
    return [Finding("health", False, line) for line in await health_warnings(engine)]


async def run_all(engine: AsyncEngine, registry: Registry, vault: Vault, http: httpx.AsyncClient) -> list[Finding]:
    """Database first; channels whenever the database answers (even with an old schema, an
    admin wants to hear about a revoked token too)."""
    findings = await check_database(engine)
    if not findings[0].ok:
        return findings
    try:
        findings += await check_channels(engine, registry, vault, http)
    except sa.exc.SQLAlchemyError as exc:
        return [*findings, Finding("channels", False, f"cannot be read ({type(exc).__name__})")]
    try:
        return findings + await check_health(engine)
    except sa.exc.SQLAlchemyError as exc:
        return [*findings, Finding("health", False, f"cannot be read ({type(exc).__name__})")]


async def check_from_settings(settings: Settings) -> list[Finding]:
    """What `socialcrm check` runs: its own engine, installed connectors and HTTP client."""
    engine = make_engine(settings.database_url)
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT, follow_redirects=False) as http:
            return await run_all(engine, Registry.from_entry_points(), Vault.from_settings(settings), http)
    finally:
        await engine.dispose()
