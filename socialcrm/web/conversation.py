"""One conversation: the thread, the contact, the reply box, and the assign/resolve buttons.

A conversation of a team the viewer does not belong to answers 404 (not 403), on every route,
so that ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from socialcrm import collision, conversations, linked_threads, moderation, replies
from socialcrm import inbox as queries
from socialcrm.users import Viewer
from socialcrm.web import answers as answer_pages
from socialcrm.web.auth import viewer_of
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
NOT_FOUND = "There is no such conversation, or it belongs to a team you are not in."


async def _detail(request: web.Request, viewer: Viewer) -> queries.ConversationDetail:
    conversation_id = int(request.match_info["id"])
    detail = await queries.conversation_detail(request.app[CORE].engine, viewer, conversation_id)
    if detail is None:
        raise web.HTTPNotFound(text=NOT_FOUND)
    return detail


async def visible_conversation(request: web.Request) -> tuple[Viewer, int]:
    """For actions: the viewer and the conversation id, after the same team check as the page."""
    viewer, conversation_id = viewer_of(request), int(request.match_info["id"])
    team_id = await queries.conversation_team(request.app[CORE].engine, conversation_id)
    if team_id is None or not viewer.may_see_team(team_id):
        raise web.HTTPNotFound(text=NOT_FOUND)
    return viewer, conversation_id


def assignment_line(detail: queries.ConversationDetail, viewer: Viewer) -> str:
    """'Assigned to you: <why>' / 'Assigned to Ana: <why>' / 'Unassigned'."""
    conv = detail.conversation
    if conv.assignee_id is None:
        return "Unassigned"
    who = "you" if conv.assignee_id == viewer.id else detail.assignee_name
    return f"Assigned to {who}: {conv.assignment_reason}" if conv.assignment_reason else f"Assigned to {who}"


async def _thread_context(request: web.Request, detail: queries.ConversationDetail, viewer: Viewer) -> dict[str, Any]:
    channel = await request.app[CORE].channels.get(detail.conversation.channel_id)
    # Least destructive first: nothing is preselected, and "delete" comes last.
    order = {"hide": 0, "unhide": 1, "delete": 2}
    moderation = sorted(channel.connector.capabilities.moderation, key=lambda a: order.get(a, 9)) if channel else []
    return {"detail": detail, "conv": detail.conversation, "assignment": assignment_line(detail, viewer),
            "moderation_actions": moderation}


async def _composer(request: web.Request, detail: queries.ConversationDetail) -> replies.ComposerInfo:
    """The reply box; a channel that cannot be loaded (connector uninstalled) disables it, with why."""
    try:
        viewer = viewer_of(request)
        return await replies.composer_info(request.app[CORE], detail.conversation.id,
                                           agent=viewer.display_name or viewer.username)
    except replies.ReplyRejected as exc:
        return replies.ComposerInfo(None, bool(detail.conversation.public), None, False, str(exc))


async def _page(request: web.Request, *, draft: str = "", error: str = "", status: int = 200,
                clash: collision.ReplyCollision | None = None) -> web.Response:
    viewer = viewer_of(request)
    detail = await _detail(request, viewer)
    composer = await _composer(request, detail)
    context = {**await _thread_context(request, detail, viewer), "composer": composer, "draft": draft,
               "error": error, "seen_public_replies": collision.marker(detail.messages), "collision": clash,
               "linked": await linked_threads.linked_view(request.app[CORE].engine, detail.conversation)}
    context.update(await answer_pages.composer_context(request, composer))   # the counter's budget
    return await render(request, "conversation/page.html", context, status=status)


@routes.get(r"/conversations/{id:\d+}", name="conversation")
async def conversation_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@routes.get(r"/conversations/{id:\d+}/thread", name="thread")
async def thread_partial(request: web.Request) -> web.StreamResponse:
    """The header and messages only: what htmx swaps in on `sse:conversation-<id>`."""
    viewer = viewer_of(request)
    detail = await _detail(request, viewer)
    return await render(request, "conversation/_thread.html", await _thread_context(request, detail, viewer))


@routes.post(r"/conversations/{id:\d+}/reply", name="reply")
async def reply(request: web.Request) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    form = await request.post()
    text, mode = str(form.get("text", "")), str(form.get("mode", "reply"))
    if mode not in ("reply", "private_reply", "template"):
        raise web.HTTPBadRequest(text="Choose a reply, a private reply or a template.")
    template = _template_choice(form) if mode == "template" else None
    try:
        seen = collision.parse_marker(form.get("seen_public_replies"))
        await replies.compose(request.app[CORE], conversation_id, viewer.id, text,
                              mode="reply" if template else mode, template=template, seen_public_replies=seen)
    except collision.ReplyCollision as exc:
        # 409: the draft is kept, the colleague's reply is shown above it, the marker now includes it.
        return await _page(request, draft=text, error=str(exc), status=409, clash=exc)
    except replies.ReplyRejected as exc:
        return await _page(request, draft=text, error=str(exc), status=422)
    raise _back(request, conversation_id)


def _template_choice(form: Any) -> dict[str, Any]:
    name, _, language = str(form.get("template", "")).partition("|")
    params = [line.strip() for line in str(form.get("parameters", "")).splitlines() if line.strip()]
    return {"name": name, "language": language, "parameters": params}


async def _visible_message(request: web.Request) -> tuple[Viewer, int, int]:
    """The message must belong to the conversation the viewer may see (ids cannot be mixed)."""
    viewer, conversation_id = await visible_conversation(request)
    message_id = int(request.match_info["mid"])
    if not await queries.message_in_conversation(request.app[CORE].engine, message_id, conversation_id):
        raise web.HTTPNotFound(text=NOT_FOUND)
    return viewer, conversation_id, message_id


@routes.post(r"/conversations/{id:\d+}/messages/{mid:\d+}/moderate", name="moderate")
async def moderate(request: web.Request) -> web.StreamResponse:
    """Hide, unhide or delete a public comment on the platform; recorded with who and why."""
    viewer, conversation_id, message_id = await _visible_message(request)
    form = await request.post()
    action, reason = str(form.get("action", "")), str(form.get("reason", ""))[:500]
    try:
        await moderation.moderate(request.app[CORE], message_id, action, viewer.id, reason)
    except moderation.ModerationRejected as exc:
        return await _page(request, error=str(exc), status=422)
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/messages/{mid:\d+}/retry", name="retry")
async def retry(request: web.Request) -> web.StreamResponse:
    """Send a failed reply again once the agent has fixed what the platform complained about."""
    viewer, conversation_id, message_id = await _visible_message(request)
    try:
        await replies.retry(request.app[CORE], message_id)
    except replies.ReplyRejected as exc:
        return await _page(request, error=str(exc), status=422)
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/assign", name="assign")
async def assign(request: web.Request) -> web.StreamResponse:
    """Take the conversation ('me') or put it back in the queue ('none')."""
    viewer, conversation_id = await visible_conversation(request)
    choice = (await request.post()).get("assignee")
    if choice not in ("me", "none"):
        raise web.HTTPBadRequest(text="Choose 'me' or 'none'.")
    await conversations.assign(request.app[CORE], conversation_id, viewer.id if choice == "me" else None, viewer.id)
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/resolve", name="resolve")
async def resolve(request: web.Request) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    await conversations.resolve(request.app[CORE], conversation_id, viewer.id)
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/pending", name="pending")
async def pending(request: web.Request) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    await conversations.set_pending(request.app[CORE], conversation_id, viewer.id)
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/reopen", name="reopen")
async def reopen(request: web.Request) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    await conversations.reopen(request.app[CORE], conversation_id, viewer.id)
    raise _back(request, conversation_id)


def _back(request: web.Request, conversation_id: int) -> web.HTTPSeeOther:
    """Post/redirect/get: a reload never sends the same reply twice."""
    return web.HTTPSeeOther(request.app.router["conversation"].url_for(id=str(conversation_id)))
