"""The search page: a query in the address (?q=...&page=N), so results can be bookmarked and
shared; the box in the header sends the agent here. As-you-type, htmx fetches the same page
and swaps the results in (the page works without it)."""

from __future__ import annotations

from aiohttp import web

from socialcrm import search
from socialcrm.web.auth import viewer_of
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()


def _page_number(raw: str | None) -> int:
    try:
        return min(max(1, int(raw or 1)), 1000)
    except ValueError:
        return 1


@routes.get("/search", name="search")
async def search_page(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("q", "")
    found = await search.search(request.app[CORE].engine, viewer_of(request), raw,
                                _page_number(request.query.get("page")))
    return await render(request, "search/page.html", {"q": raw, "found": found, "search_query": raw})
