"""The inbox: four tabs of the queue, or a filtered view (query string), re-fetched as a partial
whenever a queue changes; checkboxes on the rows feed the bulk actions (web/collab.py)."""

from __future__ import annotations

from aiohttp import web

from socialcrm import bulk, conversations, filters, tags
from socialcrm import inbox as queries
from socialcrm.web import collab
from socialcrm.web.auth import safe_next, viewer_of
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
DEFAULT_TAB = "all"


def _tab(request: web.Request) -> str:
    tab = request.query.get("tab", DEFAULT_TAB)
    if tab not in queries.TABS:
        raise web.HTTPNotFound(text=f"There is no inbox tab called {tab!r}.")
    return tab


def _filters(request: web.Request) -> filters.Filters:
    try:
        return filters.parse(request.query)
    except filters.FilterRejected as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


async def _context(request: web.Request) -> dict[str, object]:
    """A tab (the fast, index-served queues) unless the query string asks for filters."""
    engine, viewer, chosen = request.app[CORE].engine, viewer_of(request), _filters(request)
    if chosen.active:
        view = await queries.filtered_view(engine, viewer, chosen)
        list_query = chosen.query()
    else:
        view = await queries.view(engine, viewer, _tab(request))
        list_query = f"tab={view.tab}"
    return {"tab": view.tab, "tabs": view.tabs, "rows": view.rows, "filters": chosen, "has_next": view.has_next,
            "list_query": list_query}


async def _page_context(request: web.Request) -> dict[str, object]:
    """The full page also has the filter form's choices, the bulk bar and a one-time result line."""
    engine, viewer = request.app[CORE].engine, viewer_of(request)
    return {**await _context(request), "channels": await queries.channel_choices(engine, viewer),
            "known_tags": await tags.known_tags(engine), "people": await bulk.assignable(engine, viewer),
            "statuses": filters.STATUS_LABELS, "reasons": conversations.RESOLVE_REASONS,
            "flash": await collab.take_flash(request)}


@routes.get("/", name="inbox")
async def inbox_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "inbox/index.html", await _page_context(request))


@routes.get("/inbox/list", name="inbox_list")
async def inbox_list(request: web.Request) -> web.StreamResponse:
    """The tabs and rows only: what htmx swaps in on `sse:inbox`."""
    return await render(request, "inbox/_list.html", await _context(request))


@routes.post("/presence", name="presence")
async def presence(request: web.Request) -> web.StreamResponse:
    """Go online (receive new conversations) or offline (yours go back to the queue)."""
    viewer, form = viewer_of(request), await request.post()
    await conversations.set_presence(request.app[CORE], viewer.id, form.get("online") == "1")
    raise web.HTTPSeeOther(safe_next(str(form.get("next", ""))))
