"""SLA settings for leads and admins: targets per channel, business hours per team; the leads'
alert banner; and each conversation's SLA timeline (for anyone who may see the conversation).

Handlers parse the form into the values of `socialcrm.sla_policies`, which validates, stores and
audits in one transaction; a bad form comes back with a message and nothing stored (422).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from multidict import MultiMapping

from socialcrm import inbox as queries
from socialcrm import models, sla_policies, users
from socialcrm.metrics import local_time
from socialcrm.models import utcnow
from socialcrm.sla_policies import CalendarSettings, SlaRejected, StoredTargets
from socialcrm.web.auth import require_role, viewer_of
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
channel_t = models.Channel.__table__
team_t = models.Team.__table__
INTERVAL = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")
VISIBILITIES = ((True, "public"), (False, "private"))
KINDS = (("first_response", "First response"), ("next_response", "Next response"), ("resolution", "Resolution"))


def _lead(request: web.Request) -> users.Viewer:
    return require_role(request, "lead", "admin")


# -- parsing forms --------------------------------------------------------------------------

def _minutes(form: MultiMapping[Any], name: str) -> int | None:
    """Blank is the default (None); anything else must be a whole number of minutes."""
    raw = str(form.get(name, "")).strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise SlaRejected(f'"{raw}" is not a whole number of minutes.')
    return int(raw)


def parse_targets(form: MultiMapping[Any]) -> dict[bool, StoredTargets]:
    return {public: StoredTargets(*(_minutes(form, f"{word}_{kind}") for kind, _ in KINDS))
            for public, word in VISIBILITIES}


def parse_hours(day: int, raw: str) -> tuple[tuple[str, str], ...]:
    """'08:00-11:30, 12:00-16:00'; blank means closed that day."""
    found = []
    for part in (p for p in raw.split(",") if p.strip()):
        match = INTERVAL.match(part)
        if match is None:
            raise SlaRejected(f'{sla_policies.WEEKDAY_NAMES[day]}: "{part.strip()}" is not like 08:00-16:00.')
        found.append((match.group(1).zfill(5), match.group(2).zfill(5)))
    return tuple(found)


def parse_holidays(raw: str) -> frozenset[date]:
    found = set()
    for line in (x.strip() for x in raw.splitlines()):
        if not line:
            continue
        try:
            found.add(date.fromisoformat(line))
        except ValueError:
            raise SlaRejected(f'Holiday "{line}" is not a date like 2026-12-24.') from None
    return frozenset(found)


def parse_calendar(form: MultiMapping[Any]) -> CalendarSettings:
    percent = str(form.get("at_risk_percent", "")).strip()
    if not percent.isdigit():
        raise SlaRejected("The at-risk share must be a whole percentage, like 80.")
    hours = {d: parse_hours(d, str(form.get(f"hours_{d}", ""))) for d in range(7)}
    return CalendarSettings(tz=str(form.get("tz", "")).strip(), always_open=form.get("always_open") == "1",
                            hours={d: ivs for d, ivs in hours.items() if ivs},
                            holidays=parse_holidays(str(form.get("holidays", ""))),
                            at_risk_fraction=int(percent) / 100)


def calendar_form(settings: CalendarSettings) -> dict[str, Any]:
    """The stored calendar as the form shows it."""
    return {"tz": settings.tz, "always_open": settings.always_open,
            "at_risk_percent": round(settings.at_risk_fraction * 100),
            "holidays": "\n".join(d.isoformat() for d in sorted(settings.holidays)),
            **{f"hours_{d}": ", ".join(f"{s}-{e}" for s, e in settings.hours.get(d, ())) for d in range(7)}}


# -- overview -------------------------------------------------------------------------------

async def _channels(conn: Any) -> list[Any]:
    return list((await conn.execute(sa.select(channel_t.c.id, channel_t.c.name, channel_t.c.connector,
                                              channel_t.c.team_id).where(channel_t.c.status != "removed")
                                    .order_by(channel_t.c.name, channel_t.c.id))).all())


@routes.get("/sla", name="sla_settings")
async def overview(request: web.Request) -> web.StreamResponse:
    """Every channel's effective targets and every team's calendar, with links to edit them."""
    _lead(request)
    engine = request.app[CORE].engine
    async with engine.connect() as conn:
        setup = await sla_policies.load_sla_setup(conn)
        channels = await _channels(conn)
        teams = list((await conn.execute(sa.select(team_t).order_by(team_t.c.name))).all())
        stored = await sla_policies.all_calendar_settings(conn)
    calendars = {t.id: stored.get(t.id, CalendarSettings()) for t in teams}
    team_names = {t.id: t.name for t in teams}
    rows = [{"channel": ch, "team": team_names.get(ch.team_id, ""),
             "targets": {word: setup.targets(ch.id, public) for public, word in VISIBILITIES}} for ch in channels]
    return await render(request, "sla/index.html", {"rows": rows, "teams": teams, "calendars": calendars,
                                                     "weekdays": sla_policies.WEEKDAY_NAMES})


# -- a channel's targets --------------------------------------------------------------------

async def _channel_page(request: web.Request, channel_id: int, *, form: dict[str, Any] | None = None,
                        error: str = "", status: int = 200) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        channel = (await conn.execute(sa.select(channel_t).where(channel_t.c.id == channel_id))).first()
        if channel is None:
            raise web.HTTPNotFound(text="There is no such channel.")
        stored = await sla_policies.stored_targets(conn, channel_id)
    if form is None:
        form = {f"{word}_{kind}": getattr(stored[public], kind) for public, word in VISIBILITIES for kind, _ in KINDS}
    defaults = {word: sla_policies.DEFAULTS.targets(public) for public, word in VISIBILITIES}
    context = {"channel": channel, "form": form, "error": error, "kinds": KINDS, "defaults": defaults,
               "saved": request.query.get("saved") == "1"}
    return await render(request, "sla/channel.html", context, status=status)


@routes.get(r"/sla/channels/{id:\d+}", name="sla_channel")
async def channel_page(request: web.Request) -> web.StreamResponse:
    _lead(request)
    return await _channel_page(request, int(request.match_info["id"]))


@routes.post(r"/sla/channels/{id:\d+}")
async def save_channel(request: web.Request) -> web.StreamResponse:
    viewer, form, channel_id = _lead(request), await request.post(), int(request.match_info["id"])
    core = request.app[CORE]
    try:
        targets = parse_targets(form)
        async with core.engine.begin() as conn:
            await sla_policies.save_targets(conn, viewer.id, channel_id, targets)
    except SlaRejected as exc:
        kept = {f"{w}_{k}": form.get(f"{w}_{k}", "") for _, w in VISIBILITIES for k, _ in KINDS}
        return await _channel_page(request, channel_id, form=kept, error=str(exc), status=422)
    core.channels.invalidate()   # ingest reads the first-response target from the channel store
    async with core.engine.connect() as conn:
        team = await conn.scalar(sa.select(channel_t.c.team_id).where(channel_t.c.id == channel_id))
    core.hub.publish({"type": "inbox", "team_id": team})   # deadlines moved: the queue may reorder
    raise web.HTTPSeeOther(request.app.router["sla_channel"].url_for(id=str(channel_id)).with_query(saved="1"))


# -- a team's calendar ----------------------------------------------------------------------

async def _team_page(request: web.Request, team_id: int, *, form: dict[str, Any] | None = None,
                     error: str = "", status: int = 200) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        team = (await conn.execute(sa.select(team_t).where(team_t.c.id == team_id))).first()
        if team is None:
            raise web.HTTPNotFound(text="There is no such team.")
        stored = await sla_policies.calendar_settings(conn, team_id)
    context = {"team": team, "form": form or calendar_form(stored), "error": error,
               "weekdays": sla_policies.WEEKDAY_NAMES, "this_year": utcnow().year,
               "holiday_sets": sla_policies.HOLIDAY_SETS, "saved": request.query.get("saved") == "1"}
    return await render(request, "sla/team.html", context, status=status)


def _back_to_team(request: web.Request, team_id: int) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(request.app.router["sla_team"].url_for(id=str(team_id)).with_query(saved="1"))


@routes.get(r"/sla/teams/{id:\d+}", name="sla_team")
async def team_page(request: web.Request) -> web.StreamResponse:
    _lead(request)
    return await _team_page(request, int(request.match_info["id"]))


@routes.post(r"/sla/teams/{id:\d+}")
async def save_team(request: web.Request) -> web.StreamResponse:
    viewer, form, team_id = _lead(request), await request.post(), int(request.match_info["id"])
    await _team_page_exists(request, team_id)
    try:
        settings = parse_calendar(form)
        async with request.app[CORE].engine.begin() as conn:
            await sla_policies.save_calendar(conn, viewer.id, team_id, settings)
    except SlaRejected as exc:
        kept = {k: form.get(k, "") for k in ("tz", "at_risk_percent", "holidays", *(f"hours_{d}" for d in range(7)))}
        kept["always_open"] = form.get("always_open") == "1"
        return await _team_page(request, team_id, form=kept, error=str(exc), status=422)
    request.app[CORE].hub.publish({"type": "inbox", "team_id": team_id})
    raise _back_to_team(request, team_id)


@routes.post(r"/sla/teams/{id:\d+}/holidays", name="sla_team_holidays")
async def add_holidays(request: web.Request) -> web.StreamResponse:
    """Add one country's public holidays for a year to what is stored (the lead edits them after)."""
    viewer, form, team_id = _lead(request), await request.post(), int(request.match_info["id"])
    await _team_page_exists(request, team_id)
    year = str(form.get("year", "")).strip()
    try:
        if not year.isdigit():
            raise SlaRejected("Choose a year between 2000 and 2100.")
        async with request.app[CORE].engine.begin() as conn:
            current = await sla_policies.calendar_settings(conn, team_id)
            added = sla_policies.with_public_holidays(current, str(form.get("country", "")), int(year))
            await sla_policies.save_calendar(conn, viewer.id, team_id, added)
    except SlaRejected as exc:
        return await _team_page(request, team_id, error=str(exc), status=422)
    raise _back_to_team(request, team_id)


async def _team_page_exists(request: web.Request, team_id: int) -> None:
    async with request.app[CORE].engine.connect() as conn:
        if await conn.scalar(sa.select(team_t.c.id).where(team_t.c.id == team_id)) is None:
            raise web.HTTPNotFound(text="There is no such team.")


# -- the leads' banner and the conversation timeline ----------------------------------------

@routes.get("/sla/alerts", name="sla_alerts")
async def alerts(request: web.Request) -> web.StreamResponse:
    """Unassigned public posts about to breach (or past it), for the banner on every lead page."""
    viewer = _lead(request)
    async with request.app[CORE].engine.connect() as conn:
        found = await sla_policies.public_alerts(conn, None if viewer.sees_all else viewer.team_ids)
    return await render(request, "sla/_alerts.html", {"alerts": found, "now": utcnow()})


@routes.get(r"/conversations/{id:\d+}/sla", name="conversation_sla")
async def conversation_timeline(request: web.Request) -> web.StreamResponse:
    viewer, conversation_id = viewer_of(request), int(request.match_info["id"])
    engine = request.app[CORE].engine
    team = await queries.conversation_team(engine, conversation_id)
    if team is None or not viewer.may_see_team(team):
        raise web.HTTPNotFound(text="There is no such conversation.")
    now = utcnow()
    async with engine.connect() as conn:
        tl = await sla_policies.conversation_timeline(conn, conversation_id, now)
    return await render(request, "sla/_timeline_clocks.html", {"tl": tl, "now": now, "local": _local_words(tl)})


def _local_words(tl: Any) -> Any:
    """'Fri 16:55' in the team's zone, as the explanations word it."""
    def words(at: Any) -> str:
        return local_time(tl.policy.calendar, at) if tl is not None and at is not None else ""
    return words
