"""The running service: engine, connectors, pipeline, dispatcher, scheduler, live hub.

One object so the web layer, the CLI and the tests wire the same parts the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from socialcrm import sla_policies
from socialcrm.channels import ChannelStore
from socialcrm.config import Settings
from socialcrm.db import make_engine, make_sync_engine, optimize
from socialcrm.live import hub_for
from socialcrm.outbox import Dispatcher
from socialcrm.receipts import Pipeline
from socialcrm.registry import Registry
from socialcrm.routing import Assigned
from socialcrm.scheduler import Poller, build_scheduler
from socialcrm.vault import Vault

log = logging.getLogger(__name__)
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class Core:
    def __init__(self, settings: Settings, engine: AsyncEngine, registry: Registry, http: httpx.AsyncClient,
                 vault: Vault) -> None:
        self.settings, self.engine, self.registry, self.http, self.vault = settings, engine, registry, http, vault
        self.hub = hub_for(engine.url.render_as_string(hide_password=False))
        self.channels = ChannelStore(engine, registry, vault, http, settings)
        self.sync_engine = make_sync_engine(settings.database_url)
        self.pipeline = Pipeline(engine, self.channels, self.hub, self.sync_engine)
        self.dispatcher = Dispatcher(engine, self.channels, self.hub)
        self.poller = Poller(self)
        self.scheduler = None

    @classmethod
    def create(cls, settings: Settings, registry: Registry | None = None, http: httpx.AsyncClient | None = None,
               engine: AsyncEngine | None = None) -> Core:
        return cls(settings, engine or make_engine(settings.database_url),
                   registry or Registry.from_entry_points(),
                   http or httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False),
                   Vault.from_settings(settings))

    async def start(self, run_scheduler: bool | None = None) -> None:
        defaults = sla_policies.Defaults.from_settings(self.settings)
        for engine in (self.engine, self.sync_engine):
            if engine is not None:      # the SQLite writer's own engine reads the SLA setup too
                sla_policies.use_defaults(engine, defaults)
        await optimize(self.engine)
        await self.hub.start()
        await self.pipeline.start()
        if self.settings.run_scheduler if run_scheduler is None else run_scheduler:
            self.scheduler = build_scheduler(self)
            self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        await self.dispatcher.stop()
        await self.pipeline.wait_idle()
        await self.pipeline.stop()
        await self.hub.stop()
        await self.http.aclose()
        await self.engine.dispose()
        if self.sync_engine is not None:
            self.sync_engine.dispose()

    async def dispatch_outbox(self) -> None:
        while await self.dispatcher.run_once():
            pass

    def wake_dispatcher(self) -> None:
        """A reply was queued: run the outbox job now instead of at its next tick."""
        if self.scheduler is not None and self.scheduler.running:
            job = self.scheduler.get_job("outbox")
            if job is not None:
                job.modify(next_run_time=datetime.now(timezone.utc))

    def announce(self, conversation_ids: Iterable[int], team_id: int, assigned: Iterable[Assigned] = ()) -> None:
        assigned = list(assigned)
        for cid in conversation_ids:
            self.hub.publish({"type": "conversation", "conversation_id": cid, "team_id": team_id})
        for a in assigned:
            self.hub.publish({"type": "conversation", "conversation_id": a.conversation_id, "team_id": a.team_id})
        for team in {team_id} | {a.team_id for a in assigned}:
            self.hub.publish({"type": "inbox", "team_id": team})
