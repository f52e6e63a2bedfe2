"""The audit page also shows moderation and assignments changed by hand, read from the
conversation event log: who, what, when, before/after, filterable like the audit entries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from socialcrm import audit
from socialcrm.eventlog import log_event
from socialcrm.models import utcnow
from socialcrm.users import create_user
from tests.support import ev
from tests.web.conftest import PASSWORD, SignIn, World, conversation_of


@pytest.fixture
async def admin(world: World, signed_in: SignIn):
    await create_user(world.core.engine, "admin", PASSWORD, "admin", "Ada Admin")
    return await signed_in("admin")


@pytest.fixture
async def events(world: World) -> int:
    """Conversation c: the router gives it to agent, the lead moves it to outsider, then unassigns
    it; the agent hides a message. Returns the conversation id."""
    await world.ingest(world.care_channel, [ev("comment", "c-1", "cust-1", text="Hvor er pakken?")])
    conv = await conversation_of(world.core, world.care_channel, "c-1")
    t = utcnow() - timedelta(minutes=10)
    async with world.core.engine.begin() as conn:
        await log_event(conn, conv, "assigned", at=t, detail={"assignee_id": world.agent_id, "reason": "router"})
        await log_event(conn, conv, "assigned", at=t + timedelta(minutes=1), user_id=world.lead_id,
                        detail={"assignee_id": world.outsider_id, "reason": "manual"})
        await log_event(conn, conv, "unassigned", at=t + timedelta(minutes=2), user_id=world.lead_id,
                        detail={"assignee_id": None, "reason": "manual"})
        await log_event(conn, conv, "moderated", at=t + timedelta(minutes=3), user_id=world.agent_id,
                        detail={"action": "hide", "message_id": 41, "reason": "spam"})
    return conv


async def test_moderation_and_hand_made_assignments_are_entries(world: World, events: int) -> None:
    found = await audit.entries(world.core.engine)
    assert [(e.action, e.actor) for e in found] == [("conversation.moderate", "agent"),
                                                  ("conversation.assign", "lead"),
                                                  ("conversation.assign", "lead")]   # not the router's
    hide, unassign, assign = found
    assert hide.target == f"conversation {events}, message 41"
    assert hide.before == {"item": "visible"} and hide.after == {"item": "hidden", "reason": "spam"}
    assert assign.before == {"assignee": "agent"} and assign.after == {"assignee": "outsider", "reason": "manual"}
    assert unassign.before == {"assignee": "outsider"} and unassign.after["assignee"] == "nobody"
    assert {"conversation.assign", "conversation.moderate"} <= set(await audit.actions(world.core.engine))


async def test_filters_apply_to_conversation_entries(world: World, events: int) -> None:
    engine = world.core.engine
    assert [e.action for e in await audit.entries(engine, actor=world.agent_id)] == ["conversation.moderate"]
    assert len(await audit.entries(engine, action="conversation")) == 3
    assert len(await audit.entries(engine, action="conversation.assign")) == 2
    assert await audit.entries(engine, action="user") == []
    assert await audit.entries(engine, actor=world.outsider_id) == []
    assert await audit.entries(engine, since=utcnow() + timedelta(minutes=1)) == []
    assert len(await audit.entries(engine, limit=2)) == 2


async def test_the_audit_page_shows_and_filters_them(admin, world: World, events: int) -> None:
    resp, page = await admin.get("/admin/audit")
    assert resp.status == 200
    assert page.count('class="audit-entry"') == 3
    assert "conversation.moderate" in page and f"conversation {events}, message 41" in page
    assert "outsider" in page and "hidden" in page
    _, page = await admin.get(f"/admin/audit?action=conversation.moderate&actor={world.agent_id}")
    assert page.count('class="audit-entry"') == 1 and "spam" in page
    _, page = await admin.get(f"/admin/audit?actor={world.outsider_id}")
    assert page.count('class="audit-entry"') == 0
