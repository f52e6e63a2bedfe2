"""The leads' dashboard: live panel, response times, charts, drill-down lists and a CSV export.

Role lead or admin, checked here on every route (agents get 403). The handlers parse the period
and the figure asked for, get the numbers from `socialcrm.dashboard`, and shape them into cells
(text + link) so the templates stay simple; the live panel is re-fetched by htmx when the inbox
changes (`sse:inbox`, throttled) and every 30 s, since clocks run without events.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from socialcrm import charts
from socialcrm import dashboard as queries
from socialcrm.models import utcnow
from socialcrm.sla_figures import Summary
from socialcrm.web.auth import require_role
from socialcrm.web.keys import CORE
from socialcrm.web.render import duration, render

routes = web.RouteTableDef()
ROLES = ("lead", "admin")
PRESETS = {"today": 1, "7d": 7, "30d": 30}
PRESET_LABELS = {"today": "Today", "7d": "7 days", "30d": "30 days", "custom": "Chosen dates"}
#: Every clock of the period is computed (then kept a while): a quarter keeps that within seconds.
MAX_DAYS = 92
TABLE_TITLES = {"channel": "Per channel", "visibility": "Per visibility", "agent": "Per agent", "team": "Per team"}
COLUMNS = (("conversations", "Conversations", "conversations"), ("first_response_median", "First response median",
           "first_response"), ("first_response_p90", "First response p90", "first_response"),
           ("next_response_median", "Next response median", "next_response"),
           ("resolution_median", "Resolution median", "resolution"),
           ("first_response_attainment_pct", "First response in SLA", "first_response_attainment"),
           ("attainment_pct", "SLA attainment", "attainment"), ("breached", "Conversations breached", "breached"))
FIGURE_WORDS = {"conversations": "conversations", "first_response": "first responses behind the median and p90",
                "next_response": "next responses behind the median", "resolution": "resolutions behind the median",
                "first_response_attainment": "first responses with a verdict (met or breached)",
                "attainment": "clocks with a verdict (met or breached)",
                "breached": "conversations with a breached clock"}
LIVE_WORDS = {"open": "open conversations", "unassigned": "open and unassigned", "agent": "open or pending, assigned to",
              "breaching": "breaching soon (most of the target used)", "breached": "open past their target"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class BadPeriod(ValueError):
    """A period the lead typed that we cannot use; the message says why in words."""


@dataclass(frozen=True)
class Period:
    preset: str
    start: date
    end: date                 # inclusive local date
    since: datetime
    until: datetime

    @property
    def query(self) -> dict[str, str]:
        if self.preset != "custom":
            return {"range": self.preset}
        return {"range": "custom", "from": self.start.isoformat(), "to": self.end.isoformat()}

    @property
    def label(self) -> str:
        return f"{self.start:%d %b %Y}" + ("" if self.start == self.end else f" – {self.end:%d %b %Y}")


def period_from(query: Mapping[str, str], now: datetime) -> Period:
    """today, 7d, 30d (ending today, local time), or custom from..to, inclusive."""
    preset, today = query.get("range") or "7d", now.astimezone(queries.ZONE).date()
    if preset in PRESETS:
        start, end = today - timedelta(days=PRESETS[preset] - 1), today
    elif preset == "custom":
        try:
            start, end = date.fromisoformat(query.get("from", "")), date.fromisoformat(query.get("to", ""))
        except ValueError:
            raise BadPeriod("Give both dates as YYYY-MM-DD.") from None
        if end < start:
            raise BadPeriod("The end date is before the start date.")
        if (end - start).days + 1 > MAX_DAYS:
            raise BadPeriod(f"Choose at most {MAX_DAYS} days.")
    else:
        raise BadPeriod("Choose today, 7 days, 30 days or your own dates.")
    since = datetime.combine(start, time.min, queries.ZONE).astimezone(UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, queries.ZONE).astimezone(UTC)
    return Period(preset, start, end, since, until)


@dataclass(frozen=True)
class Cell:
    text: str
    link: str | None = None
    value: float | int | None = None   # the raw number, for the CSV


def drill_link(period: Period, table: str, key: Any, figure: str) -> str:
    return "/dashboard/conversations?" + urlencode({**period.query, "table": table,
                                                    "key": queries.group_key(key), "figure": figure})


def live_link(name: str, key: str = "") -> str:
    return "/dashboard/conversations?" + urlencode({"live": name, **({"key": key} if key else {})})


def _cell(summary: Summary, attr: str, figure: str, link: str) -> Cell:
    # A conversation can breach more than one clock; the number counts conversations, like its list.
    value = len(summary.breached_ids) if attr == "breached" else getattr(summary, attr)
    if value is None:
        return Cell("—", None, None)
    if attr.endswith("_pct"):
        text = f"{value:.0f} %"
    elif attr.endswith(("_median", "_p90")):
        text = duration(timedelta(minutes=value))
    else:
        text = str(value)
    empty = attr in ("conversations", "breached") and value == 0      # a 0 % or a 0-minute median has clocks behind it
    return Cell(text, None if empty else link, round(value, 1) if isinstance(value, float) else value)


def summary_cells(period: Period, table: str, key: Hashable, summary: Summary) -> list[Cell]:
    return [_cell(summary, attr, figure, drill_link(period, table, key, figure)) for attr, _, figure in COLUMNS]


def tables(fig: queries.Figures, names: queries.Names, period: Period) -> dict[str, list[tuple[str, list[Cell]]]]:
    """Each grouping's rows (name, cells), busiest first."""
    out: dict[str, list[tuple[str, list[Cell]]]] = {}
    for table, groups in fig.tables.items():
        ordered = sorted(groups.items(), key=lambda kv: (-kv[1].conversations, names.of(table, kv[0])))
        out[table] = [(names.of(table, k), summary_cells(period, table, k, s)) for k, s in ordered]
    return out


def chart_svgs(fig: queries.Figures, names: queries.Names, period: Period) -> dict[str, Any]:
    channels = sorted({c for c, _ in fig.volume}, key=lambda c: names.of("channel", c))
    series = [charts.Series(names.of("channel", c), [fig.volume.get((c, h), 0) for h in range(24)],
                            [drill_link(period, "hour", f"{c}-{h}", "conversations") for h in range(24)])
              for c in channels]
    days = [period.start + timedelta(days=i) for i in range((period.end - period.start).days + 1)]

    def points(attr: str, figure: str) -> list[charts.Point]:
        out = []
        for d in days:
            s = fig.per_day.get(d)
            value = getattr(s, attr) if s else None
            out.append(charts.Point(f"{d:%d %b}", value, drill_link(period, "day", d, figure) if value is not None else None))
        return out

    return {
        "volume": charts.stacked_bars("Conversations per hour of day, by channel",
                                      f"New conversations per local hour, {period.label}, stacked by channel.",
                                      [f"{h:02d}" for h in range(24)], series, "hour of day", "conversations"),
        "legend": charts.legend(series),
        "first_response": charts.line_chart("First response time per day (median)",
                                            "Median business minutes to the first reply, per day the conversation started.",
                                            points("first_response_median", "first_response"), "day", "minutes", " min"),
        "attainment": charts.line_chart("SLA attainment per day", "Share of clocks that met their target, per day.",
                                        points("attainment_pct", "attainment"), "day", "% met", " %", top=100),
    }


def load_chart(live: queries.Live) -> Any:
    bars = [charts.Bar(a.name, a.load, a.capacity, live_link("agent", str(a.id))) for a in live.agents]
    return charts.load_bars("Open conversations per online agent", "Each agent's open and pending conversations "
                            "against their capacity (the outline).", bars, "conversations")


# -- handlers ---------------------------------------------------------------------------------

async def _figures(request: web.Request, period: Period) -> tuple[queries.Figures, queries.Names]:
    engine = request.app[CORE].engine
    fig = await queries.cache_for(engine).get(period.since, period.until, utcnow())
    async with engine.connect() as conn:
        return fig, await queries.names(conn)


async def _live_context(request: web.Request) -> dict[str, Any]:
    async with request.app[CORE].engine.connect() as conn:
        live, names = await queries.live(conn, utcnow()), await queries.names(conn)
    rows = sorted({c for c, _ in live.open_by_channel}, key=lambda c: names.of("channel", c))
    return {"live": live, "names": names, "live_link": live_link, "load_chart": load_chart(live),
            "channel_rows": [(names.of("channel", c), c, live.open_by_channel.get((c, True), 0),
                              live.open_by_channel.get((c, False), 0)) for c in rows]}


@routes.get("/dashboard", name="dashboard")
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    """A bad period shows its reason over the default period (status 400), not an error page."""
    require_role(request, *ROLES)
    error, status = "", 200
    try:
        period = period_from(request.query, utcnow())
    except BadPeriod as exc:
        error, status, period = str(exc), 400, period_from({}, utcnow())
    fig, names = await _figures(request, period)
    context = {"period": period, "error": error, "presets": PRESET_LABELS, "fig": fig, "tables": tables(fig, names, period),
               "titles": TABLE_TITLES, "columns": COLUMNS, "charts": chart_svgs(fig, names, period),
               "csv_link": "/dashboard.csv?" + urlencode(period.query), "max_days": MAX_DAYS,
               "total": summary_cells(period, "all", "all", fig.total) if fig.total else None,
               **await _live_context(request)}
    return await render(request, "dashboard/page.html", context, status=status)


@routes.get("/dashboard/live", name="dashboard_live")
async def dashboard_live(request: web.Request) -> web.StreamResponse:
    """The live panel alone: what htmx swaps in."""
    require_role(request, *ROLES)
    return await render(request, "dashboard/_live.html", await _live_context(request))


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise web.HTTPBadRequest(text="'page' must be a whole number from 1.")
    return int(raw)


@routes.get("/dashboard/conversations", name="dashboard_conversations")
async def drill_down(request: web.Request) -> web.StreamResponse:
    """The conversations behind one number, 50 to a page, each linking to its conversation."""
    require_role(request, *ROLES)
    page, q = _page_number(request), request.query
    if "live" in q:
        context = await _live_list(request, q.get("live", ""), q.get("key", ""), page)
    else:
        context = await _figure_list(request, q, page)
    pages = queries.in_pages(context["total"])
    base = {k: v for k, v in q.items() if k != "page"}
    context |= {"page": page, "pages": pages, "page_link": lambda n: "?" + urlencode({**base, "page": str(n)})}
    return await render(request, "dashboard/conversations.html", context)


async def _live_list(request: web.Request, name: str, key: str, page: int) -> dict[str, Any]:
    try:
        where = queries.live_where(name, key, utcnow())
    except KeyError:
        raise web.HTTPBadRequest(text=f"Unknown live figure {name!r}; one of {', '.join(queries.LIVE_FILTERS)}.") from None
    async with request.app[CORE].engine.connect() as conn:
        total, rows = await queries.rows_for_live(conn, where, page)
        names = await queries.names(conn)
    heading = LIVE_WORDS.get(name, name)
    if name == "agent":
        heading = f"{heading} {names.agents.get(int(key), 'user ' + key)}"
    elif name == "open" and key:
        channel, _, vis = key.partition("-")
        heading = f"{heading}, {names.of('channel', int(channel))}, {vis}"
    return {"heading": f"Now: {heading}", "rows": rows, "total": total, "notes": {}, "back": "/dashboard"}


async def _figure_list(request: web.Request, q: Mapping[str, str], page: int) -> dict[str, Any]:
    try:
        period = period_from(q, utcnow())
    except BadPeriod as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    table, key, figure = q.get("table", "all"), q.get("key", "all"), q.get("figure", "conversations")
    fig, names = await _figures(request, period)
    try:
        ids = queries.ids_behind(fig, table, key, figure)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except KeyError:
        raise web.HTTPNotFound(text="Nothing was counted for that group in this period.") from None
    async with request.app[CORE].engine.connect() as conn:
        rows = await queries.rows_for_ids(conn, ids, page)
    heading = f"{period.label}: {FIGURE_WORDS.get(figure, figure)}, {_group_words(table, key, names)}"
    by_id = fig.by_id
    notes = {} if figure == "conversations" else {r.id: _clock_note(by_id.get(r.id), figure) for r in rows}
    return {"heading": heading, "rows": rows, "total": len(ids), "notes": notes,
            "back": "/dashboard?" + urlencode(period.query)}


def _group_words(table: str, key: str, names: queries.Names) -> str:
    """'all conversations', 'started 2026-11-20', 'Facebook, 09:00-10:00', 'agent Kari Nordmann'."""
    if table == "all":
        return "all conversations"
    if table == "day":
        return f"started {key}"
    if table == "hour":
        channel, _, hour = key.partition("-")
        return f"{names.of('channel', _typed('channel', channel))}, {int(hour):02d}:00-{int(hour) + 1:02d}:00"
    return f"{table} {names.of(table, _typed(table, key))}"


def _typed(table: str, key: str) -> Any:
    if key == "none":
        return None
    return int(key) if key.isdigit() and table in ("channel", "team", "agent") else key


def _clock_note(tl: Any, figure: str) -> str:
    """The clock behind the number for this conversation, in words ('first response 25 min, met')."""
    kinds = queries.FIGURE_CLOCKS.get(figure)
    if tl is None or figure == "conversations":
        return ""
    clocks = [c for c in tl.clocks if (kinds is None or c.kind in kinds) and c.status in ("met", "breached")]
    if figure == "breached":
        clocks = [c for c in tl.clocks if c.status == "breached"]
    return "; ".join(f"{c.kind.replace('_', ' ')} {duration(timedelta(minutes=c.business_minutes))}, {c.status}"
                     for c in clocks)


# -- CSV ---------------------------------------------------------------------------------------

def csv_safe(value: Any) -> str:
    """Text a spreadsheet will not run: a cell starting with = + - @ (or tab, CR) gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(fig: queries.Figures, names: queries.Names, period: Period) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["period", "table", "group", *(f"{label} (business min)" if "median" in attr or "p90" in attr
                                                   else (f"{label} (%)" if attr.endswith("_pct") else label)
                                                   for attr, label, _ in COLUMNS)])
    rows = [("all", "all", fig.total)] if fig.total else []
    for table, groups in fig.tables.items():
        rows += [(table, names.of(table, k), s) for k, s in sorted(groups.items(), key=lambda kv: -kv[1].conversations)]
    for table, group, s in rows:
        cells = [_cell(s, attr, figure, "").value for attr, _, figure in COLUMNS]
        writer.writerow([csv_safe(v) for v in (period.label, table, group, *cells)])
    return out.getvalue()


@routes.get("/dashboard.csv", name="dashboard_csv")
async def dashboard_csv(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    try:
        period = period_from(request.query, utcnow())
    except BadPeriod as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    fig, names = await _figures(request, period)
    filename = f"response-times-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    return web.Response(text=csv_text(fig, names, period), content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
