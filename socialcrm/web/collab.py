"""Working together: notes with @mentions, tags, snooze, spam, resolve with a reason, bulk
actions from the inbox, and each person's notifications.

Every action checks the conversation's team like the conversation page does (404 when not
visible), takes a CSRF-checked POST, and redirects back (post/redirect/get). A one-line
result that the next page shows (who was not notified, what a bulk action skipped) travels in
the session, read once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp_session import get_session

from socialcrm import bulk, conversations, models, notes, notifications, snooze, spam, tags
from socialcrm import inbox as queries
from socialcrm.models import utcnow
from socialcrm.users import Viewer
from socialcrm.web.auth import safe_next, viewer_of
from socialcrm.web.conversation import visible_conversation
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
conversation_t = models.Conversation.__table__
FLASH = "collab_flash"


def _back(request: web.Request, conversation_id: int) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/conversations/{conversation_id}")


async def flash(request: web.Request, message: str) -> None:
    (await get_session(request))[FLASH] = message


async def take_flash(request: web.Request) -> str:
    return str((await get_session(request)).pop(FLASH, "") or "")


# -- notes ----------------------------------------------------------------------------------

@routes.post(r"/conversations/{id:\d+}/notes", name="note")
async def add_note(request: web.Request) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    text = str((await request.post()).get("text", ""))
    try:
        result = await notes.add_note(request.app[CORE], conversation_id, viewer.id, text)
    except notes.NoteRejected as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    if result.unmatched:
        names = ", ".join(f"@{n}" for n in result.unmatched)
        await flash(request, f"Note saved. Not notified: {names} (no active colleague by that name can see "
                             "this conversation).")
    raise _back(request, conversation_id)


# -- the panel: tags, snooze, spam ------------------------------------------------------------

async def _panel_context(request: web.Request, conversation_id: int) -> dict[str, Any]:
    engine, c = request.app[CORE].engine, conversation_t.c
    async with engine.connect() as conn:
        conv = (await conn.execute(sa.select(c.id, c.status, c.snoozed_until).where(c.id == conversation_id))).one()
        labels = (await tags.tags_of(conn, [conversation_id]))[conversation_id]
    return {"conv": conv, "tags": labels, "known_tags": await tags.known_tags(engine),
            "presets": snooze.PRESETS, "flash": await take_flash(request), "tag_max": tags.MAX_LENGTH}


@routes.get(r"/conversations/{id:\d+}/organise", name="collab_panel")
async def panel(request: web.Request) -> web.StreamResponse:
    """Tags, snooze and spam of one conversation: fetched by the page (and on every change)."""
    _, conversation_id = await visible_conversation(request)
    return await render(request, "collab/_panel.html", await _panel_context(request, conversation_id))


@routes.post(r"/conversations/{id:\d+}/tags", name="tag_add")
async def tag_add(request: web.Request) -> web.StreamResponse:
    return await _tag_change(request, tags.add)


@routes.post(r"/conversations/{id:\d+}/tags/remove", name="tag_remove")
async def tag_remove(request: web.Request) -> web.StreamResponse:
    return await _tag_change(request, tags.remove)


async def _tag_change(request: web.Request, change: Any) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    text = str((await request.post()).get("tag", ""))
    try:
        await change(request.app[CORE].engine, conversation_id, text, viewer.id)
    except tags.TagRejected as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    team = await queries.conversation_team(request.app[CORE].engine, conversation_id)
    request.app[CORE].announce([conversation_id], team)
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/snooze", name="snooze")
async def snooze_conversation(request: web.Request) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    form, now = await request.post(), utcnow()
    try:
        until = snooze.parse_until(str(form.get("preset", "")), str(form.get("until", "")), now)
        await snooze.snooze(request.app[CORE], conversation_id, until, viewer.id, now)
    except snooze.SnoozeRejected as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/spam", name="spam")
async def mark_spam(request: web.Request) -> web.StreamResponse:
    return await _spam_change(request, spam.mark_spam)


@routes.post(r"/conversations/{id:\d+}/not-spam", name="not_spam")
async def not_spam(request: web.Request) -> web.StreamResponse:
    return await _spam_change(request, spam.not_spam)


async def _spam_change(request: web.Request, change: Any) -> web.StreamResponse:
    viewer, conversation_id = await visible_conversation(request)
    try:
        await change(request.app[CORE], conversation_id, viewer.id)
    except spam.SpamRejected as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc)) from None
    raise _back(request, conversation_id)


@routes.post(r"/conversations/{id:\d+}/resolution", name="resolve_with_reason")
async def resolve_with_reason(request: web.Request) -> web.StreamResponse:
    """Resolve, with an optional reason from the list and optional words of the agent's own."""
    viewer, conversation_id = await visible_conversation(request)
    reason = _reason(await request.post())
    await conversations.resolve(request.app[CORE], conversation_id, viewer.id, reason)
    raise _back(request, conversation_id)


def _reason(form: Any) -> str:
    try:
        return conversations.resolve_reason(str(form.get("reason", "")), str(form.get("reason_text", "")))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


# -- bulk -----------------------------------------------------------------------------------

@routes.post("/inbox/bulk", name="inbox_bulk")
async def bulk_action(request: web.Request) -> web.StreamResponse:
    """One POST for the selection; the inbox then says how many changed and what was skipped."""
    viewer, form = viewer_of(request), await request.post()
    ids = [int(v) for v in form.getall("conversation", []) if str(v).isdigit()]
    action = str(form.get("action", ""))
    try:
        assignee = await _bulk_assignee(request, viewer, str(form.get("assignee", ""))) if action == "assign" else None
        reason = _reason(form) if action == "resolve" else ""
        result = await bulk.apply(request.app[CORE], viewer, ids, action, assignee=assignee,
                                  tag=str(form.get("tag", "")), reason=reason)
    except (bulk.BulkRejected, tags.TagRejected) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    await flash(request, bulk_summary(action, result))
    raise web.HTTPSeeOther(safe_next(str(form.get("next", ""))))


async def _bulk_assignee(request: web.Request, viewer: Viewer, choice: str) -> bulk.Assignee | None:
    if choice == "none":
        return None
    wanted = viewer.id if choice == "me" else int(choice) if choice.isdigit() else None
    for person in await bulk.assignable(request.app[CORE].engine, viewer):
        if person.id == wanted:
            return person
    raise bulk.BulkRejected("Choose someone from your teams to assign the conversations to.")


def bulk_summary(action: str, result: bulk.BulkResult) -> str:
    """'Resolved 3 conversations. Skipped 1: #12 already resolved.'"""
    verb = {"assign": "Assigned", "tag": "Tagged", "resolve": "Resolved"}[action]
    n = len(result.changed)
    text = f"{verb} {n} conversation{'' if n == 1 else 's'}."
    if result.skipped:
        text += f" Skipped {len(result.skipped)}: " + "; ".join(f"#{cid} {why}" for cid, why in result.skipped) + "."
    return text


# -- notifications --------------------------------------------------------------------------

@routes.get("/notifications", name="notifications")
async def notifications_page(request: web.Request) -> web.StreamResponse:
    viewer = viewer_of(request)
    items = await notifications.recent(request.app[CORE].engine, viewer.id)
    return await render(request, "collab/notifications.html", {"items": items})


@routes.get("/notifications/bell", name="notifications_bell")
async def bell(request: web.Request) -> web.StreamResponse:
    """The bell with its count and the newest unread ones: what htmx swaps in on `sse:notification`."""
    return await render(request, "collab/_bell.html", await bell_context(request))


async def bell_context(request: web.Request) -> dict[str, Any]:
    viewer, engine = viewer_of(request), request.app[CORE].engine
    return {"unread": await notifications.unread_count(engine, viewer.id),
            "latest": await notifications.recent(engine, viewer.id, unread_only=True, limit=5),
            "count_cap": notifications.COUNT_CAP}


@routes.get(r"/notifications/{nid:\d+}", name="notification_open")
async def open_notification(request: web.Request) -> web.StreamResponse:
    """Follow a notification: it is read now, and the conversation opens."""
    viewer = viewer_of(request)
    conversation_id = await notifications.open_one(request.app[CORE].engine, viewer.id, int(request.match_info["nid"]))
    if conversation_id is None:
        raise web.HTTPNotFound(text="There is no such notification.")
    request.app[CORE].hub.publish({"type": "notification", "user_id": viewer.id})
    raise web.HTTPSeeOther(f"/conversations/{conversation_id}")


@routes.post("/notifications/read", name="notifications_read")
async def mark_read(request: web.Request) -> web.StreamResponse:
    """Mark the chosen notifications (or all, with all=1) read."""
    viewer, form = viewer_of(request), await request.post()
    ids = None if form.get("all") == "1" else [int(v) for v in form.getall("id", []) if str(v).isdigit()]
    if ids == []:
        raise web.HTTPBadRequest(text="Choose the notifications to mark as read.")
    await notifications.mark_read(request.app[CORE].engine, viewer.id, ids)
    request.app[CORE].hub.publish({"type": "notification", "user_id": viewer.id})
    raise web.HTTPSeeOther(safe_next(str(form.get("next", "/notifications"))))
