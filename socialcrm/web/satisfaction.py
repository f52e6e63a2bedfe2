"""Leads' view of satisfaction: CSAT beside first-contact resolution, per agent, channel or team,
every number linking to the conversations behind it. Role lead or admin."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from socialcrm import satisfaction
from socialcrm.models import utcnow
from socialcrm.web.auth import require_role
from socialcrm.web.dashboard import BadPeriod, Period, period_from
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
FIGURE_LABELS = {"sent": "surveys sent", "answered": "surveys answered", "satisfied": "satisfied (rated 4 or 5)",
                 "unsatisfied": "not satisfied (rated 1 to 3)", "said_first_contact": "said: solved on first contact",
                 "said_self_help": "said: shown how to help themselves", "fcr_yes": "resolved on first contact",
                 "fcr_no": "not resolved on first contact"}


def drill_link(period: Period, grouping: str, key: object, what: str) -> str:
    """Where a number links to: the same period and grouping, one row, one figure."""
    return "/dashboard/satisfaction/conversations?" + urlencode(
        {**period.query, "by": grouping, "key": str(key), "what": what})


def _grouping(request: web.Request) -> str:
    by = request.query.get("by", "agent")
    if by not in satisfaction.GROUPINGS:
        raise web.HTTPBadRequest(text=f"'by' must be one of {', '.join(satisfaction.GROUPINGS)}.")
    return by


async def _report(request: web.Request, period: Period) -> satisfaction.Report:
    async with request.app[CORE].engine.connect() as conn:
        return await satisfaction.report(conn, period.since, period.until, utcnow(), _grouping(request))


@routes.get("/dashboard/satisfaction", name="satisfaction")
async def satisfaction_page(request: web.Request) -> web.StreamResponse:
    """A bad period is shown as a message over the default period, not an error page."""
    require_role(request, "lead", "admin")
    error, status = "", 200
    try:
        period = period_from(request.query, utcnow())
    except BadPeriod as exc:
        error, status, period = str(exc), 400, period_from({}, utcnow())
    context = {"report": await _report(request, period), "period": period, "error": error,
               "drill_link": drill_link}
    return await render(request, "satisfaction/page.html", context, status=status)


@routes.get("/dashboard/satisfaction/conversations", name="satisfaction_list")
async def satisfaction_list(request: web.Request) -> web.StreamResponse:
    require_role(request, "lead", "admin")
    try:
        period = period_from(request.query, utcnow())
    except BadPeriod as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    report = await _report(request, period)
    what = request.query.get("what", "")
    if what not in satisfaction.DRILL_DOWNS:
        raise web.HTTPBadRequest(text=f"'what' must be one of {', '.join(satisfaction.DRILL_DOWNS)}.")
    try:
        row = report.row(request.query.get("key", "all"))
    except KeyError:
        raise web.HTTPNotFound(text="Nothing was counted for that group in this period.") from None
    ids = row.ids(what)
    async with request.app[CORE].engine.connect() as conn:
        rows = await satisfaction.conversations(conn, ids)
    return await render(request, "satisfaction/list.html", {
        "row": row, "what": what, "rows": rows, "total": len(ids), "period": period, "report": report,
        "labels": FIGURE_LABELS})
