"""One tracked thread: public comment -> private reply -> the customer's DM, linked, with one SLA.

Meta's documented payloads (connectors/*/fixtures) go through parse and ingest; the private
reply goes through replies.compose and the real outbox against a mocked Graph API that answers
as the Send API does ({"recipient_id", "message_id"}). The fixtures were written one by one,
so their times do not tell one story; each parsed event is moved to its place in this story
(comment, our private reply 5 minutes later, its echo, the customer's DM 25 minutes after that).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
import sqlalchemy as sa

from connectors.facebook import FacebookConnector
from connectors.instagram import InstagramConnector
from socialcrm import ingest, linked_threads, metrics, models, replies, sla_policies
from socialcrm.channels import create_channel
from socialcrm.connector import WebhookRequest
from socialcrm.users import ensure_team
from tests.support import add_agent, add_team_and_channel, ev, running_core

conv_t, msg_t, event_t = models.Conversation.__table__, models.Message.__table__, models.ConversationEvent.__table__
ROOT = Path(__file__).resolve().parents[1]
GRAPH = "http://graph.test"
PAGE, IG_ACCOUNT = "104650212345678", "17841405822304914"
SETTINGS = {
    "facebook": {"page_id": PAGE, "app_secret": "s", "verify_token": "v", "access_token": "t", "api_base_url": GRAPH},
    "instagram": {"ig_user_id": IG_ACCOUNT, "app_secret": "s", "verify_token": "v", "access_token": "t",
                  "api_base_url": GRAPH},
}
POLICY = metrics.SlaPolicy(first_response_minutes=60, next_response_minutes=30, resolution_minutes=1440)


def fixture(connector: str, name: str) -> bytes:
    return (ROOT / "connectors" / connector / "fixtures" / f"{name}.json").read_bytes()


async def channel_of(core, connector: str) -> int:
    async with core.engine.begin() as conn:
        team_id = await ensure_team(conn, "Care")
    channel_id = await create_channel(core.engine, core.registry, core.vault, connector=connector, name=connector,
                                      team_id=team_id, settings=SETTINGS[connector])
    # Distinct targets, so a next-response deadline cannot pass for a first-response one.
    async with core.engine.begin() as conn:
        await sla_policies.save_targets(conn, None, channel_id, {
            True: sla_policies.StoredTargets(60, 30, 1440), False: sla_policies.StoredTargets(240, 45, 4320)})
    core.channels.invalidate()
    return channel_id


async def deliver(core, channel_id: int, body: bytes, at: datetime) -> None:
    """Parse a documented payload, set its time to the story's, ingest it as the webhook would."""
    channel = await core.channels.get(channel_id)
    events = [dataclasses.replace(e, created_at=at) for e in
              channel.connector.parse(WebhookRequest.build("POST", "/webhooks/x", {}, None, body))]
    async with core.engine.begin() as conn:
        await ingest.apply(conn, channel.info, events, now=at)


async def conversation_with(core, external_id: str) -> int:
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(msg_t.c.conversation_id).where(msg_t.c.external_id == external_id))


async def thread(core, thread_key: str) -> int:
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(conv_t.c.id).where(conv_t.c.thread_key == thread_key))


async def row(core, conv_id: int):
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(conv_t).where(conv_t.c.id == conv_id))).one()


async def log(core, conv_id: int) -> list[metrics.Event]:
    async with core.engine.connect() as conn:
        return metrics.events_from_rows((await conn.execute(
            sa.select(event_t).where(event_t.c.conversation_id == conv_id).order_by(event_t.c.id))).all())


async def private_reply(core, monkeypatch, conv_id: int, at: datetime, mid: str, recipient: str) -> int:
    """Compose at `at` (fixed clock), then let the outbox send it; Graph answers like the Send API."""
    monkeypatch.setattr(replies, "utcnow", lambda: at)
    agent = await add_agent(core, "kari", online=False)
    with respx.mock(base_url=GRAPH) as graph:
        route = graph.post(path__regex=r"/messages$").mock(
            return_value=httpx.Response(200, json={"recipient_id": recipient, "message_id": mid}))
        message_id = await replies.compose(core, conv_id, agent, "Hei! Vi har sendt deg en melding.",
                                           mode="private_reply")
        await core.dispatcher.run_once()
        assert route.call_count == 1 and "comment_id" in route.calls[0].request.content.decode()
    return message_id


@pytest.mark.parametrize("connector, comment, comment_id, echo, dm, customer, mid", [
    ("facebook", "feed_comment__top_level", "1234567890123456_987654321098765", "message_echo__page_inbox",
     "message__attachments", "7012345678901234", "m_PageEcho00000000000000001"),
    ("instagram", "comment__top_level", "17867301270523379", "echo__dm", "dm__text", "7130482395716248",
     "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI1ODU5OTE3NTI2OTQwODg3NjozMjUwMzYxNzM3ODgxMjk0MTEzNTc4"),
])
async def test_the_echo_of_our_private_reply_links_the_dm_and_the_clock_continues(
        database_url, monkeypatch, connector, comment, comment_id, echo, dm, customer, mid):
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    async with running_core(database_url, connectors=(FacebookConnector, InstagramConnector)) as core:
        channel_id = await channel_of(core, connector)
        await deliver(core, channel_id, fixture(connector, comment), t0)
        public = await conversation_with(core, comment_id)
        await private_reply(core, monkeypatch, public, t0 + timedelta(minutes=5), mid, customer)
        await deliver(core, channel_id, fixture(connector, echo), t0 + timedelta(minutes=5, seconds=1))
        await deliver(core, channel_id, fixture(connector, dm), t0 + timedelta(minutes=30))

        private = await thread(core, customer)
        dm_row, public_row = await row(core, private), await row(core, public)
        assert dm_row.linked_from_id == public and public_row.linked_from_id is None
        assert dm_row.status == "open" and dm_row.waiting_since == t0 + timedelta(minutes=30)
        # One SLA: the private reply was the first response; the DM runs a next-response clock.
        assert dm_row.first_response_at == public_row.first_response_at == t0 + timedelta(minutes=5)
        events = await log(core, private)
        linked = next(e for e in events if e.kind == "linked")
        assert linked.at == t0 + timedelta(minutes=5)
        assert linked.detail == {"from_conversation_id": public, "comment": comment_id}
        tl = metrics.timeline(events, POLICY, t0 + timedelta(minutes=40))
        assert tl.first_response is None
        # The inbox's deadline too: the team's next-response target, not the first-response one.
        async with core.engine.connect() as conn:
            policy = (await sla_policies.load_sla_setup(conn)).policy_in_team(dm_row.team_id, channel_id, False)
        assert (policy.first_response_minutes, policy.next_response_minutes) == (240, 45)
        assert dm_row.sla_due_at == dm_row.waiting_since + timedelta(minutes=policy.next_response_minutes)
        assert [(c.kind, c.started_at) for c in tl.next_responses] == [("next_response", t0 + timedelta(minutes=30))]


def test_without_the_link_the_same_dm_would_start_a_first_response_clock():
    """The control: metrics without the "linked" event counts a first response."""
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    events = [metrics.Event("created", t0), metrics.Event("customer_message", t0 + timedelta(minutes=30))]
    assert metrics.timeline(events, POLICY, t0 + timedelta(hours=1)).first_response is not None
    linked = [metrics.Event("linked", t0 + timedelta(minutes=5)), *events]
    assert metrics.timeline(linked, POLICY, t0 + timedelta(hours=1)).first_response is None


async def test_an_agents_answer_in_the_linked_dm_is_a_next_response(database_url, monkeypatch):
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    async with running_core(database_url, connectors=(FacebookConnector, InstagramConnector)) as core:
        channel_id = await channel_of(core, "facebook")
        await deliver(core, channel_id, fixture("facebook", "feed_comment__top_level"), t0)
        public = await conversation_with(core, "1234567890123456_987654321098765")
        await private_reply(core, monkeypatch, public, t0 + timedelta(minutes=5), "m_PageEcho00000000000000001",
                            "7012345678901234")
        await deliver(core, channel_id, fixture("facebook", "message_echo__page_inbox"), t0 + timedelta(minutes=6))
        await deliver(core, channel_id, fixture("facebook", "message__attachments"), t0 + timedelta(minutes=30))
        private = await thread(core, "7012345678901234")
        monkeypatch.setattr(replies, "utcnow", lambda: t0 + timedelta(minutes=45))
        agent = await add_agent(core, "bo", online=False)
        await replies.compose(core, private, agent, "Takk! Vi ser på det.")
        kinds = [e.kind for e in await log(core, private)]
        assert "responded" in kinds and "first_response" not in kinds
        tl = metrics.timeline(await log(core, private), POLICY, t0 + timedelta(hours=1))
        assert tl.first_response is None and tl.next_responses[0].status == "met"


async def identity_story(core, *, reply_status: str = "sent", reply_age: timedelta = timedelta(minutes=5),
                         private_replies: bool = True):
    """The simulator's identity rule: the commenter's id is also their DM id (one identity). The
    simulator declares no private replies to comments, so the story says its platform has them."""
    channel_id = await add_team_and_channel(core)
    info = dataclasses.replace((await core.channels.get(channel_id)).info, private_reply_to_public=private_replies)
    t0 = datetime.fromisoformat("2026-11-24T10:00:00+00:00")
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("comment", "c-1", "post-1", author="sigrid", public=True, at=t0)], now=t0)
    public = await conversation_with(core, "c-1")
    async with core.engine.begin() as conn:
        conv = (await conn.execute(sa.select(conv_t).where(conv_t.c.id == public))).one()
        message_id = await replies.queue_message(conn, conv, None, "See your inbox", False, "private_reply", {},
                                                 t0 + timedelta(minutes=5))
        await conn.execute(msg_t.update().where(msg_t.c.id == message_id).values(status=reply_status))
    dm_at = t0 + timedelta(minutes=5) + reply_age
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("message", "dm-1", "sigrid", author="sigrid", at=dm_at),
                                        ev("message", "dm-2", "other", author="other", at=dm_at)], now=dm_at)
    return public, await conversation_with(core, "dm-1"), await conversation_with(core, "dm-2")


async def test_same_identity_dm_after_a_private_reply_is_linked_but_nobody_else(database_url):
    async with running_core(database_url) as core:
        public, dm, other = await identity_story(core)
        assert (await row(core, dm)).linked_from_id == public
        assert (await row(core, other)).linked_from_id is None


@pytest.mark.parametrize("status, age", [("failed", timedelta(minutes=5)), ("sent", timedelta(days=8))])
async def test_no_link_after_a_failed_or_old_private_reply(database_url, status, age):
    async with running_core(database_url) as core:
        _, dm, _ = await identity_story(core, reply_status=status, reply_age=age)
        assert (await row(core, dm)).linked_from_id is None
        assert [e.kind for e in await log(core, dm)].count("linked") == 0


async def test_a_platform_without_private_replies_to_comments_is_never_searched_for_links(database_url):
    async with running_core(database_url) as core:
        _, dm, _ = await identity_story(core, private_replies=False)
        assert (await row(core, dm)).linked_from_id is None


async def test_a_link_is_made_once(database_url):
    async with running_core(database_url) as core:
        public, dm, _ = await identity_story(core)
        info = dataclasses.replace((await core.channels.get(1)).info, private_reply_to_public=True)
        later = datetime.fromisoformat("2026-11-24T11:00:00+00:00")
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("message", "dm-3", "sigrid", author="sigrid", at=later)], now=later)
        assert [e.kind for e in await log(core, dm)].count("linked") == 1


async def test_the_page_view_both_ways(database_url):
    async with running_core(database_url) as core:
        public, dm, _ = await identity_story(core)
        dm_view = await linked_threads.linked_view(core.engine, await row(core, dm))
        assert dm_view.public_conversation_id == public and dm_view.comment_text == "hello"
        public_view = await linked_threads.linked_view(core.engine, await row(core, public))
        assert [r.id for r in public_view.private_conversations] == [dm] and public_view.can_close_out
