"""One customer: every identity and conversation across channels, and merge suggestions.

The conversation page loads the panel from here (htmx, on load) and falls back to its own short
panel without JavaScript. Accept, undo and dismiss are plain CSRF-protected forms that redirect
back (post/redirect/get). A customer is visible to an agent who can see one of their
conversations; deciding a suggestion needs both customers visible. Anything else is a 404.
"""

from __future__ import annotations

from aiohttp import web

from socialcrm import merge
from socialcrm.web.auth import safe_next, viewer_of
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
NOT_FOUND = "There is no such customer, or they only wrote to teams you are not in."
NO_SUGGESTION = "There is no such merge suggestion."
PAGE_CONVERSATIONS = 50
ACTIONS = {"accept": merge.accept, "undo": merge.undo, "dismiss": merge.dismiss}


MAX_ID = 2**31 - 1          # larger ids do not exist (and would overflow PostgreSQL's integer)
MAX_PAGE = 10_000


def _int(value: str | None, default: int, most: int) -> int:
    try:
        return min(max(0, int(value or default)), most)
    except ValueError:
        return default


def _id(request: web.Request, not_found: str) -> int:
    value = int(request.match_info["id"])
    if value > MAX_ID:
        raise web.HTTPNotFound(text=not_found)
    return value


async def _panel(request: web.Request, limit: int, offset: int = 0) -> merge.Panel:
    found = await merge.panel(request.app[CORE].engine, viewer_of(request), _id(request, NOT_FOUND),
                              limit=limit, offset=offset)
    if found is None:
        raise web.HTTPNotFound(text=NOT_FOUND)
    return found


@routes.get(r"/contacts/{id:\d+}", name="contact")
async def contact_page(request: web.Request) -> web.StreamResponse:
    """The whole customer, conversations paged by PAGE_CONVERSATIONS."""
    page = max(1, _int(request.query.get("page"), 1, MAX_PAGE))
    panel = await _panel(request, PAGE_CONVERSATIONS, (page - 1) * PAGE_CONVERSATIONS)
    return await render(request, "contacts/page.html", {"panel": panel, "page": page, "back": request.path_qs})


@routes.get(r"/contacts/{id:\d+}/panel", name="contact_panel")
async def contact_panel(request: web.Request) -> web.StreamResponse:
    """The side panel of a conversation page: what htmx swaps in for the short one."""
    panel = await _panel(request, merge.PANEL_CONVERSATIONS)
    current = _int(request.query.get("conversation"), 0, MAX_ID)
    back = f"/conversations/{current}" if current else f"/contacts/{panel.contact.id}"
    return await render(request, "contacts/_panel.html", {"panel": panel, "current": current, "back": back})


@routes.post(r"/merge-suggestions/{id:\d+}/{action:(accept|undo|dismiss)}", name="merge_decide")
async def decide(request: web.Request) -> web.StreamResponse:
    """Accept, undo or dismiss; a refusal (already decided, moved since) is shown with why."""
    engine, viewer = request.app[CORE].engine, viewer_of(request)
    suggestion_id, action = _id(request, NO_SUGGESTION), request.match_info["action"]
    contacts = await merge.suggestion_contacts(engine, suggestion_id)
    if contacts is None or not await merge.may_decide(engine, viewer, *contacts):
        raise web.HTTPNotFound(text=NO_SUGGESTION)
    form = await request.post()
    back = safe_next(str(form.get("next", ""))) if form.get("next") else f"/contacts/{contacts[0]}"
    try:
        await ACTIONS[action](engine, suggestion_id, viewer.id)
    except merge.MergeRejected as exc:
        panel = await merge.panel(engine, viewer, contacts[0], limit=PAGE_CONVERSATIONS)
        return await render(request, "contacts/page.html", {"panel": panel, "page": 1, "back": back,
                                                            "error": str(exc)}, status=409)
    raise web.HTTPSeeOther(back)

