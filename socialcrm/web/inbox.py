"""The inbox: four tabs of the queue, re-fetched as a partial whenever a queue changes."""

from __future__ import annotations

from aiohttp import web

from socialcrm import conversations
from socialcrm import inbox as queries
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


async def _context(request: web.Request) -> dict[str, object]:
    view = await queries.view(request.app[CORE].engine, viewer_of(request), _tab(request))
    return {"tab": view.tab, "tabs": view.tabs, "rows": view.rows}


@routes.get("/", name="inbox")
async def inbox_page(request: web.Request) -> web.StreamResponse:
    return await render(request, "inbox/index.html", await _context(request))


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
