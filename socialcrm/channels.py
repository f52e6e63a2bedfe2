"""Configured channels and the connector instance each one runs with.

Settings are split by the connector's own declaration: `SecretStr` fields are encrypted
with the vault, everything else is stored in clear so admins can read it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import BaseModel, SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm import models
from socialcrm.config import Settings
from socialcrm.connector import Connector
from socialcrm.ingest import ChannelInfo
from socialcrm.models import utcnow
from socialcrm.registry import Registry
from socialcrm.vault import Vault

channel_t = models.Channel.__table__
#: account_id() is pure: no HTTP client is needed to ask a connector which account it is.
_NO_HTTP: Any = None


def secret_fields(settings_model: type[BaseModel]) -> set[str]:
    return {name for name, f in settings_model.model_fields.items() if f.annotation in (SecretStr, SecretStr | None)}


def split_settings(cls: type[Connector], values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate, then split into (plain, secret) dicts of JSON-able values."""
    model = cls.Settings.model_validate(values)
    secrets = secret_fields(cls.Settings)
    plain, hidden = {}, {}
    for name in cls.Settings.model_fields:
        value = getattr(model, name)
        if name in secrets:
            if value is not None:
                hidden[name] = value.get_secret_value()
        else:
            plain[name] = value
    return plain, hidden


@dataclass
class LoadedChannel:
    row: models.Channel
    connector: Connector
    info: ChannelInfo

    @property
    def id(self) -> int:
        assert self.row.id is not None
        return self.row.id


class ChannelStore:
    """Caches connector instances per channel.

    `invalidate()` after a change in this process; changes made elsewhere (the CLI, another
    server process) are seen after MAX_AGE, or at once when an unknown channel is asked for."""

    MAX_AGE = 30.0
    MISS_RELOAD_INTERVAL = 1.0

    def __init__(self, engine: AsyncEngine, registry: Registry, vault: Vault, http: httpx.AsyncClient,
                 settings: Settings) -> None:
        self.engine, self.registry, self.vault, self.http, self.settings = engine, registry, vault, http, settings
        self._cache: dict[int, LoadedChannel] | None = None
        self._loaded_at = 0.0

    def invalidate(self) -> None:
        self._cache = None

    async def all(self) -> dict[int, LoadedChannel]:
        if self._cache is None or time.monotonic() - self._loaded_at > self.MAX_AGE:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(sa.select(channel_t))).all()
            self._cache = {r.id: self._load(models.Channel.model_validate(r._asdict())) for r in rows
                           if r.connector in self.registry}
            self._loaded_at = time.monotonic()
        return self._cache

    async def _after_miss(self) -> dict[int, LoadedChannel]:
        """Something asked for a channel we do not know: it may be new. Reload, at most once a second."""
        if time.monotonic() - self._loaded_at > self.MISS_RELOAD_INTERVAL:
            self._cache = None
        return await self.all()

    def _load(self, row: models.Channel) -> LoadedChannel:
        cls = self.registry.get(row.connector)
        values = {**row.settings, **self.vault.decrypt(row.secrets_encrypted)}
        connector = cls.from_settings(values, self.http)
        info = ChannelInfo(
            id=row.id or 0, team_id=row.team_id,
            sla_public_minutes=row.sla_public_minutes or self.settings.sla_public_minutes,
            sla_private_minutes=row.sla_private_minutes or self.settings.sla_private_minutes,
            private_reply_to_public=cls.capabilities.private_reply_to_public,
        )
        return LoadedChannel(row, connector, info)

    async def get(self, channel_id: int) -> LoadedChannel | None:
        found = (await self.all()).get(channel_id)
        return found if found is not None else (await self._after_miss()).get(channel_id)

    async def for_connector(self, key: str) -> list[LoadedChannel]:
        found = _active(await self.all(), key)
        return found or _active(await self._after_miss(), key)

    async def by_account(self, key: str, account_id: str) -> LoadedChannel | None:
        found = _with_account(await self.all(), key, account_id)
        return found if found is not None else _with_account(await self._after_miss(), key, account_id)


def _with_account(channels: dict[int, LoadedChannel], key: str, account_id: str) -> LoadedChannel | None:
    return next((c for c in _active(channels, key) if c.row.account_id == account_id), None)


#: Statuses an admin chose: no webhooks accepted, no polls, no sends, no platform calls.
STOPPED = frozenset({"paused", "removed"})


def _active(channels: dict[int, LoadedChannel], key: str) -> list[LoadedChannel]:
    return [c for c in channels.values() if c.row.connector == key and c.row.status not in STOPPED]


async def create_channel(engine: AsyncEngine, registry: Registry, vault: Vault, *, connector: str, name: str,
                         team_id: int, settings: dict[str, Any], **extra: Any) -> int:
    """Store a channel; the same platform account cannot be connected twice (unique constraint)."""
    cls = registry.get(connector)
    plain, hidden = split_settings(cls, settings)
    account_id = cls(cls.Settings.model_validate(settings), _NO_HTTP).account_id()
    extra.setdefault("poll_enabled", cls.capabilities.poll and not cls.capabilities.webhook)
    async with engine.begin() as conn:
        return (await conn.execute(channel_t.insert().values(
            connector=connector, name=name, account_id=account_id, team_id=team_id, settings=plain,
            secrets_encrypted=vault.encrypt(hidden), status="active", status_reason="",
            created_at=utcnow(), **{"auto_assign": True, **extra},
        ).returning(channel_t.c.id))).scalar_one()


async def set_status(engine: AsyncEngine, channel_id: int, status: str, reason: str = "") -> None:
    async with engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == channel_id)
                           .values(status=status, status_reason=reason))


async def add_channel_from_cli(settings: Settings, connector: str, name: str, team: str, pairs: list[str],
                               poll: bool) -> tuple[int, str]:
    """The CLI's way to connect an account until admins do it in the UI: test, then store.
    Secrets never come from argv (ps, shell history): SOCIALCRM_SECRET_<KEY> or a prompt."""
    import getpass
    import os

    from pydantic import ValidationError

    from socialcrm.db import make_engine
    from socialcrm.errors import SendError
    from socialcrm.users import ensure_team

    registry = Registry.from_entry_points()
    if connector not in registry:
        raise ValueError(f"no connector {connector!r}; known: {', '.join(registry.keys())}")
    cls = registry.get(connector)
    values: dict[str, Any] = dict(p.split("=", 1) for p in pairs if "=" in p)
    for key in secret_fields(cls.Settings):
        from_env = os.environ.get(f"SOCIALCRM_SECRET_{key.upper()}")
        if from_env:
            values[key] = from_env
        elif cls.Settings.model_fields[key].is_required():
            values[key] = getpass.getpass(f"{key}: ")
    try:
        cls.Settings.model_validate(values)
    except ValidationError as exc:
        raise ValueError("bad settings: " + ", ".join(".".join(map(str, e["loc"])) + " " + e["msg"]
                                                    for e in exc.errors())) from None
    async with httpx.AsyncClient(timeout=15) as http:
        try:
            await cls.from_settings(values, http).check()
        except SendError as exc:
            raise ValueError(f"the platform refused the credentials: {exc}") from None
    engine = make_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            team_id = await ensure_team(conn, team)
        channel_id = await create_channel(engine, registry, Vault.from_settings(settings), connector=connector,
                                          name=name, team_id=team_id, settings=values,
                                          **({"poll_enabled": True} if poll else {}))
    except sa.exc.IntegrityError:
        raise ValueError("this platform account is already connected") from None
    finally:
        await engine.dispose()
    return channel_id, f"{settings.public_url.rstrip('/')}/webhooks/{connector}/{channel_id}"
