"""Admin pages for channels: list, add (test before save), one channel, health, receipts log.

Every route is for admins only. A form is generated from the connector's own pydantic
`Settings`; secret fields are write-only: never echoed back into a form, shown only as
"•••• <last 4>" once stored. The core never names a connector: optional platform features
(`set_webhook`, `webhook_info`) are found with `hasattr`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from socialcrm import audit, channels, checks, health, models
from socialcrm.channels import STOPPED
from socialcrm.connector import Connector
from socialcrm.errors import AuthFailed, PermanentError, SendError, TransientError
from socialcrm.web.auth import require_role
from socialcrm.web.keys import CORE, VIEWER
from socialcrm.web.render import render

if TYPE_CHECKING:
    from socialcrm.core import Core

routes = web.RouteTableDef()

channel_t, team_t, receipt_t = models.Channel.__table__, models.Team.__table__, models.Receipt.__table__
RECEIPT_STATUSES = ("processed", "pending", "failed")
RECEIPT_LIMIT = 100
MASK = "••••"
#: A secret shorter than this is shown as the mask alone: its last 4 would be too much of it.
MASK_MIN_LENGTH = 12
REFUSED = "The platform refused these credentials"
UNREACHABLE = "Could not reach the platform"
DUPLICATE = "This account is already connected"
#: The per-channel settings an admin edits (and the audit log records before/after).
SETTING_FIELDS = ("team_id", "sla_public_minutes", "sla_private_minutes", "auto_assign", "csat_enabled",
                  "reply_signature")
SLA_MAX_MINUTES = 60 * 24 * 30
SIGNATURE_MAX = 200


def _admin(request: web.Request) -> None:
    require_role(request, "admin")


# -- the form a connector's Settings declare ---------------------------------------------------

@dataclass(frozen=True)
class FormField:
    name: str
    help: str
    default: str
    secret: bool
    required: bool


def form_fields(cls: type[Connector]) -> list[FormField]:
    """One input per declared setting, in declaration order."""
    secrets = channels.secret_fields(cls.Settings)
    return [FormField(name, f.description or "", _default(f.default), name in secrets, f.is_required())
            for name, f in cls.Settings.model_fields.items()]


def _default(value: Any) -> str:
    return "" if value is PydanticUndefined or value is None else str(value)


def submitted_settings(cls: type[Connector], form: Any) -> dict[str, str]:
    """The posted values of the declared fields; an empty optional one takes its default."""
    values = {f.name: str(form.get(f.name, "")).strip() for f in form_fields(cls)}
    return {name: value for name, value in values.items()
            if value or cls.Settings.model_fields[name].is_required()}


def validation_words(exc: ValidationError) -> list[str]:
    """'bot_token: must be ...' per error, never the input (it may be a secret)."""
    return [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors(include_input=False)]


async def test_connection(cls: type[Connector], values: dict[str, str], http: Any) -> str:
    """'' when the platform accepts the credentials, else why not in words."""
    try:
        await cls.from_settings(values, http).check()
    except AuthFailed:
        return REFUSED
    except TransientError:
        return UNREACHABLE
    except PermanentError as exc:
        return str(exc)
    except SendError as exc:   # RateLimited: the platform is there, but not now
        return f"{UNREACHABLE}: {exc}"
    return ""


def masked(secret: str) -> str:
    return f"{MASK} {secret[-4:]}" if len(secret) >= MASK_MIN_LENGTH else MASK


def webhook_url(request: web.Request, connector: str, channel_id: int) -> str:
    base = request.app[CORE].settings.public_url.rstrip("/")
    return f"{base}/webhooks/{connector}/{channel_id}"


def readme_of(cls: type[Connector]) -> str | None:
    """Where the connector's README (the platform-side setup steps) is, e.g. connectors/x/README.md."""
    path = Path(inspect.getfile(cls)).parent / "README.md"
    return str(path.relative_to(path.parents[2])) if path.is_file() else None


# -- queries ------------------------------------------------------------------------------------

async def _teams(request: web.Request) -> list[Any]:
    async with request.app[CORE].engine.connect() as conn:
        return (await conn.execute(sa.select(team_t).order_by(team_t.c.name))).all()


async def _channel_rows(request: web.Request) -> list[Any]:
    query = (sa.select(channel_t, team_t.c.name.label("team_name"))
             .join(team_t, team_t.c.id == channel_t.c.team_id).order_by(channel_t.c.name, channel_t.c.id))
    async with request.app[CORE].engine.connect() as conn:
        return (await conn.execute(query)).all()


async def _channel_row(request: web.Request) -> Any:
    channel_id = int(request.match_info["id"])
    query = (sa.select(channel_t, team_t.c.name.label("team_name"))
             .join(team_t, team_t.c.id == channel_t.c.team_id).where(channel_t.c.id == channel_id))
    async with request.app[CORE].engine.connect() as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        raise web.HTTPNotFound(text="There is no such channel.")
    return row


async def _receipts(request: web.Request, status: str) -> list[Any]:
    query = (sa.select(receipt_t.c.id, receipt_t.c.connector, receipt_t.c.channel_id, receipt_t.c.received_at,
                       receipt_t.c.status, receipt_t.c.events, receipt_t.c.error, channel_t.c.name.label("channel"))
             .outerjoin(channel_t, channel_t.c.id == receipt_t.c.channel_id)
             .order_by(receipt_t.c.id.desc()).limit(RECEIPT_LIMIT))
    if status:
        query = query.where(receipt_t.c.status == status)
    async with request.app[CORE].engine.connect() as conn:
        return (await conn.execute(query)).all()


# -- list and add -------------------------------------------------------------------------------

@routes.get("/admin/channels", name="admin-channels")
async def channel_list(request: web.Request) -> web.StreamResponse:
    _admin(request)
    show_removed = request.query.get("show") == "removed"
    rows = await _channel_rows(request)
    shown = rows if show_removed else [r for r in rows if r.status != "removed"]
    context = {"channels": shown, "show_removed": show_removed,
               "removed_count": sum(r.status == "removed" for r in rows)}
    return await render(request, "admin/channels.html", context)


def _connector_class(request: web.Request, key: str) -> type[Connector] | None:
    registry = request.app[CORE].registry
    return registry.get(key) if key in registry else None


async def _new_page(request: web.Request, cls: type[Connector] | None, *, values: dict[str, str] | None = None,
                    errors: list[str] | None = None, status: int = 200) -> web.Response:
    context = {"connectors": request.app[CORE].registry.keys(), "cls": cls,
               "fields": form_fields(cls) if cls else [], "teams": await _teams(request),
               "values": values or {}, "errors": errors or []}
    return await render(request, "admin/channel_new.html", context, status=status)


@routes.get("/admin/channels/new", name="admin-channel-new")
async def channel_new(request: web.Request) -> web.StreamResponse:
    _admin(request)
    return await _new_page(request, _connector_class(request, request.query.get("connector", "")))


@routes.post("/admin/channels/new")
async def channel_create(request: web.Request) -> web.StreamResponse:
    """Validate, test the connection, and only then store; errors come back in words."""
    _admin(request)
    form = await request.post()
    cls = _connector_class(request, str(form.get("connector", "")))
    if cls is None:
        return await _new_page(request, None, errors=["Choose a connector."], status=422)
    values = submitted_settings(cls, form)
    shown = _echo(cls, form)
    name, team_id = str(form.get("name", "")).strip(), str(form.get("team_id", ""))
    problems = _form_problems(cls, values, name, team_id, {t.id for t in await _teams(request)})
    if not problems:
        problems = [e for e in [await test_connection(cls, values, request.app[CORE].http)] if e]
    if problems:
        return await _new_page(request, cls, values=shown, errors=problems, status=422)
    channel_id = await _store(request, cls, name, int(team_id), values)
    if channel_id is None:
        return await _new_page(request, cls, values=shown, errors=[DUPLICATE], status=409)
    raise web.HTTPSeeOther(request.app.router["admin-channel"].url_for(id=str(channel_id)))


def _echo(cls: type[Connector], form: Any) -> dict[str, str]:
    """What the form shows again after an error: name, team and the non-secret fields only."""
    secrets = channels.secret_fields(cls.Settings)
    keep = [f for f in cls.Settings.model_fields if f not in secrets] + ["name", "team_id"]
    return {key: str(form.get(key, "")) for key in keep}


def _form_problems(cls: type[Connector], values: dict[str, str], name: str, team_id: str,
                   teams: set[int]) -> list[str]:
    problems = [] if name else ["name: give the channel a name agents will recognise"]
    if not team_id.isdigit() or int(team_id) not in teams:
        problems.append("team: choose the team that answers this channel")
    try:
        cls.Settings.model_validate(values)
    except ValidationError as exc:
        problems.extend(validation_words(exc))
    return problems


async def _store(request: web.Request, cls: type[Connector], name: str, team_id: int,
                 values: dict[str, str]) -> int | None:
    """The new channel's id, or None when this platform account is already connected."""
    core = request.app[CORE]
    try:
        channel_id = await channels.create_channel(core.engine, core.registry, core.vault, connector=cls.key,
                                                   name=name, team_id=team_id, settings=values)
    except sa.exc.IntegrityError:
        return None
    core.channels.invalidate()
    return channel_id


# -- one channel --------------------------------------------------------------------------------

async def _channel_page(request: web.Request, *, error: str = "", status: int = 200,
                        form: dict[str, Any] | None = None) -> web.Response:
    row = await _channel_row(request)
    core = request.app[CORE]
    cls = _connector_class(request, row.connector)
    secrets = {k: masked(str(v)) for k, v in core.vault.decrypt(row.secrets_encrypted).items()}
    context = {"channel": row, "cls": cls, "webhook_url": webhook_url(request, row.connector, row.id),
               "settings": row.settings, "secrets": secrets, "readme": readme_of(cls) if cls else None,
               "can_register": cls is not None and hasattr(cls, "set_webhook"), "error": error,
               "registered": request.query.get("registered") == "1", "teams": await _teams(request),
               "form": form if form is not None else _settings_of(row), "saved": request.query.get("saved") == "1",
               "defaults": {"public": core.settings.sla_public_minutes, "private": core.settings.sla_private_minutes}}
    return await render(request, "admin/channel.html", context, status=status)


@routes.get(r"/admin/channels/{id:\d+}", name="admin-channel")
async def channel_page(request: web.Request) -> web.StreamResponse:
    _admin(request)
    return await _channel_page(request)


@routes.post(r"/admin/channels/{id:\d+}/status", name="admin-channel-status")
async def channel_status(request: web.Request) -> web.StreamResponse:
    """Pause (no polling, no sending, webhooks ignored) or resume a channel."""
    viewer = require_role(request, "admin")
    row = await _channel_row(request)
    action = (await request.post()).get("action")
    if action not in STATUS_ACTIONS:
        raise web.HTTPBadRequest(text="Choose pause, resume or remove.")
    status, reason = STATUS_ACTIONS[action]
    async with request.app[CORE].engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == row.id)
                           .values(status=status, status_reason=reason))
        await audit.record(conn, viewer.id, f"channel.{action}", _target(row),
                           {"status": row.status, "status_reason": row.status_reason},
                           {"status": status, "status_reason": reason})
    request.app[CORE].channels.invalidate()
    if action == "remove":
        raise web.HTTPSeeOther(request.app.router["admin-channels"].url_for())
    raise _to_channel(request, row.id)


#: action -> (status, reason). "remove" keeps the channel's conversations and messages readable;
#: like "paused" it is not polled, sent through or accepted by its webhook. "resume" undoes both.
STATUS_ACTIONS = {"pause": ("paused", "paused by an admin"), "resume": ("active", ""),
                  "remove": ("removed", "removed by an admin")}


def _target(row: Any) -> str:
    return f"channel {row.id} ({row.name})"


# -- per-channel settings -------------------------------------------------------------------------

def _settings_of(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in SETTING_FIELDS}


def parse_settings(form: Any, teams: set[int]) -> tuple[dict[str, Any], list[str]]:
    """The posted settings and what is wrong with them, in words. A blank target is the default."""
    problems: list[str] = []
    team = str(form.get("team_id", ""))
    values: dict[str, Any] = {"team_id": int(team) if team.isdigit() else team,
                              "auto_assign": form.get("auto_assign") == "1",
                              "csat_enabled": form.get("csat_enabled") == "1",
                              "reply_signature": str(form.get("reply_signature", "")).strip()}
    if values["team_id"] not in teams:
        problems.append("team: choose the team that answers this channel")
    for name, words in (("sla_public_minutes", "public"), ("sla_private_minutes", "private")):
        raw = str(form.get(name, "")).strip()
        values[name] = int(raw) if raw.isdigit() else (None if not raw else raw)
        if values[name] is not None and not (isinstance(values[name], int) and 1 <= values[name] <= SLA_MAX_MINUTES):
            problems.append(f"first-response target ({words}): whole minutes from 1 to {SLA_MAX_MINUTES}, "
                            f"or blank for the default")
    if len(values["reply_signature"]) > SIGNATURE_MAX:
        problems.append(f"signature: at most {SIGNATURE_MAX} characters")
    if "\n" in values["reply_signature"] or "\r" in values["reply_signature"]:
        problems.append("signature: one line")
    return values, problems


@routes.post(r"/admin/channels/{id:\d+}/settings", name="admin-channel-settings")
async def channel_settings(request: web.Request) -> web.StreamResponse:
    """Team, first-response targets, auto-assignment, CSAT and signature: audited before/after."""
    viewer = require_role(request, "admin")
    row = await _channel_row(request)
    values, problems = parse_settings(await request.post(), {t.id for t in await _teams(request)})
    if problems:
        return await _channel_page(request, error="; ".join(problems), status=422, form=values)
    before = _settings_of(row)
    if values != before:
        async with request.app[CORE].engine.begin() as conn:
            await conn.execute(channel_t.update().where(channel_t.c.id == row.id).values(**values))
            changed = [k for k in SETTING_FIELDS if values[k] != before[k]]
            await audit.record(conn, viewer.id, "channel.settings", _target(row),
                               {k: before[k] for k in changed}, {k: values[k] for k in changed})
        request.app[CORE].channels.invalidate()
    url = request.app.router["admin-channel"].url_for(id=str(row.id))
    raise web.HTTPSeeOther(url.with_query(saved="1"))


# -- the warning banner on every admin page ------------------------------------------------------

async def admin_warnings(core: Core) -> list[str]:
    """"Channel X: ..." per health warning (the same source as `socialcrm check`), plus what the
    platforms said about tokens and subscriptions (asked at most every ten minutes)."""
    channels = list((await core.channels.all()).values())
    return await checks.health_warnings(core.engine) + await health.cached_platform_warnings(channels)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def warnings_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An admin's GET of an admin page gets `health_warnings` in its template context: one health
    computation per page view, none for anyone else (base.html shows the banner)."""
    viewer = request.get(VIEWER)
    if request.method == "GET" and request.path.startswith("/admin/") and viewer is not None \
            and viewer.role == "admin":
        context = request.setdefault(aiohttp_jinja2.REQUEST_CONTEXT_KEY, {})
        context["health_warnings"] = await admin_warnings(request.app[CORE])
    return await handler(request)


@routes.post(r"/admin/channels/{id:\d+}/webhook", name="admin-channel-webhook")
async def register_webhook(request: web.Request) -> web.StreamResponse:
    """Tell the platform where to send events (for connectors that can be told, e.g. setWebhook)."""
    _admin(request)
    row = await _channel_row(request)
    loaded = await request.app[CORE].channels.get(row.id)
    if loaded is None or not hasattr(loaded.connector, "set_webhook"):
        return await _channel_page(request, error="This connector cannot register its webhook.", status=422)
    try:
        await loaded.connector.set_webhook(webhook_url(request, row.connector, row.id))
    except SendError as exc:
        return await _channel_page(request, error=f"The platform did not register the webhook: {exc}",
                                   status=502)
    raise _to_channel(request, row.id, registered=True)


def _to_channel(request: web.Request, channel_id: int, registered: bool = False) -> web.HTTPSeeOther:
    url = request.app.router["admin-channel"].url_for(id=str(channel_id))
    return web.HTTPSeeOther(url.with_query(registered="1") if registered else url)


# -- health and receipts ------------------------------------------------------------------------

@routes.get("/admin/health", name="admin-health")
async def health_page(request: web.Request) -> web.StreamResponse:
    _admin(request)
    core = request.app[CORE]
    found = await health.channel_health(core.engine)
    webhooks = {}
    for h in found:
        loaded = await core.channels.get(h.channel_id) if h.status not in STOPPED else None
        webhooks[h.channel_id] = await health.webhook_status(loaded.connector) if loaded else None
    return await render(request, "admin/health.html", {"channels": found, "webhooks": webhooks})


@routes.get("/admin/receipts", name="admin-receipts")
async def receipts_page(request: web.Request) -> web.StreamResponse:
    _admin(request)
    status = request.query.get("status", "")
    status = status if status in RECEIPT_STATUSES else ""
    context = {"receipts": await _receipts(request, status), "status": status, "statuses": RECEIPT_STATUSES}
    return await render(request, "admin/receipts.html", context)


@routes.post(r"/admin/receipts/{id:\d+}/replay", name="admin-receipt-replay")
async def replay_receipt(request: web.Request) -> web.StreamResponse:
    """Parse and ingest a stored delivery again, after whatever made it fail is fixed."""
    _admin(request)
    receipt_id = int(request.match_info["id"])
    async with request.app[CORE].engine.connect() as conn:
        known = await conn.scalar(sa.select(receipt_t.c.id).where(receipt_t.c.id == receipt_id))
    if known is None:
        raise web.HTTPNotFound(text="There is no such delivery.")
    await request.app[CORE].pipeline.replay(receipt_id)
    status = str((await request.post()).get("status", ""))
    url = request.app.router["admin-receipts"].url_for()
    raise web.HTTPSeeOther(url.with_query(status=status) if status in RECEIPT_STATUSES else url)
