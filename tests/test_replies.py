"""Reply rules declared as capabilities and enforced by the core, whatever the connector."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
import respx
import sqlalchemy as sa

from connectors.simulator import SimulatorConnector
from socialcrm import ingest, models, moderation, replies
from socialcrm.models import utcnow
from tests.support import PLATFORM, add_agent, add_team_and_channel, ev, running_core

out_t, msg_t, event_t = models.OutboxEntry.__table__, models.Message.__table__, models.ConversationEvent.__table__


class MetaLike(SimulatorConnector):
    """The simulator with Meta's rules: HUMAN_AGENT for 7 days, one private reply per comment."""

    key = "metalike"
    capabilities = replace(SimulatorConnector.capabilities, human_agent_window=timedelta(days=7),
                           private_reply_to_public=True, private_reply_window=timedelta(days=7),
                           moderation=frozenset({"hide", "unhide", "delete"}))


class WhatsAppLike(SimulatorConnector):
    key = "walike"
    capabilities = replace(SimulatorConnector.capabilities, templates_outside_window=True)

    def allowed_templates(self):
        return [{"name": "order_update", "language": "nb", "parameters": 1}]


async def conversation(core, connector, *, public=False, hours_ago=0.0, kind=None):
    channel_id = await add_team_and_channel(core, connector=connector)
    info = (await core.channels.get(channel_id)).info
    event = ev(kind or ("comment" if public else "message"), "in-1", "post-1" if public else "cust-1",
               public=public, at=utcnow() - timedelta(hours=hours_ago))
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [event])
    return 1, await add_agent(core, "kari", online=False)


async def payload(core):
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(out_t.c.payload).order_by(out_t.c.id.desc()))).scalars().first()


async def test_inside_the_window_a_reply_is_plain(database_url):
    async with running_core(database_url, connectors=(MetaLike,)) as core:
        conv, agent = await conversation(core, "metalike", hours_ago=1)
        await replies.compose(core, conv, agent, "Hei")
        assert (await payload(core))["outside_window"] is False


async def test_after_24h_a_person_may_still_answer_for_7_days_tagged(database_url):
    async with running_core(database_url, connectors=(MetaLike,)) as core:
        conv, agent = await conversation(core, "metalike", hours_ago=30)
        info = await replies.composer_info(core, conv)
        assert info.can_send and "human agent" in info.note
        await replies.compose(core, conv, agent, "Beklager ventetiden")
        assert (await payload(core))["outside_window"] is True


async def test_after_7_days_the_composer_says_why_it_cannot_send(database_url):
    async with running_core(database_url, connectors=(MetaLike,)) as core:
        conv, agent = await conversation(core, "metalike", hours_ago=8 * 24)
        info = await replies.composer_info(core, conv)
        assert not info.can_send and "window closed" in info.reason
        with pytest.raises(replies.ReplyRejected, match="window closed"):
            await replies.compose(core, conv, agent, "Hei")


async def test_outside_the_window_only_a_template_may_go(database_url):
    async with running_core(database_url, connectors=(WhatsAppLike,)) as core:
        conv, agent = await conversation(core, "walike", hours_ago=25)
        with pytest.raises(replies.ReplyRejected, match="only an approved template"):
            await replies.compose(core, conv, agent, "Hei")
        info = await replies.composer_info(core, conv)
        assert not info.can_send and info.templates == ({"name": "order_update", "language": "nb", "parameters": 1},)
        with pytest.raises(replies.ReplyRejected, match="takes 1 parameters, 2 given"):
            await replies.compose(core, conv, agent, "", template={"name": "order_update", "language": "nb",
                                                                   "parameters": ["a", "b"]})
        with pytest.raises(replies.ReplyRejected, match="not approved"):
            await replies.compose(core, conv, agent, "", template={"name": "promo", "language": "nb"})
        template = {"name": "order_update", "language": "nb", "parameters": ["Kari"]}
        await replies.compose(core, conv, agent, "", template=template)
        sent = await payload(core)
        assert sent["mode"] == "template" and sent["template"] == template
        assert sent["text"] == "[template order_update (nb)] Kari"


async def test_a_public_comment_gets_one_private_reply(database_url):
    async with running_core(database_url, connectors=(MetaLike,)) as core:
        conv, agent = await conversation(core, "metalike", public=True)
        assert (await replies.composer_info(core, conv)).can_reply_privately
        await replies.compose(core, conv, agent, "Vi har sendt deg en melding", mode="private_reply")
        sent = await payload(core)
        assert sent["mode"] == "private_reply" and sent["public"] is False
        assert sent["extra"] == {"in_reply_to_kind": "comment"}
        assert sent["in_reply_to_external_id"] == "in-1"
        with pytest.raises(replies.ReplyRejected, match="one private reply"):
            await replies.compose(core, conv, agent, "again", mode="private_reply")
        await replies.compose(core, conv, agent, "Vi har sendt deg en melding 🙂")   # a public close-out note
        assert (await payload(core))["public"] is True


async def test_private_reply_is_refused_where_the_platform_has_none(database_url):
    async with running_core(database_url) as core:
        conv, agent = await conversation(core, "simulator", public=True)
        with pytest.raises(replies.ReplyRejected, match="cannot answer this conversation privately"):
            await replies.compose(core, conv, agent, "Hei", mode="private_reply")


async def test_a_customer_who_blocked_us_cannot_be_messaged(database_url):
    async with running_core(database_url) as core:
        conv, agent = await conversation(core, "simulator", hours_ago=1)
        info = (await core.channels.get(1)).info
        async with core.engine.begin() as conn:
            await ingest.apply(conn, info, [ev("status", "blocked-1", "cust-1", detail={"reachable": False})])
        with pytest.raises(replies.ReplyRejected, match="blocked us"):
            await replies.compose(core, conv, agent, "Hei")


async def test_moderation_calls_the_platform_and_records_who_and_why(database_url):
    async with running_core(database_url, connectors=(MetaLike,)) as core, respx.mock(base_url=PLATFORM) as platform:
        hide = platform.post("/api/items/in-1/hide").mock(return_value=httpx.Response(200, json={}))
        conv, agent = await conversation(core, "metalike", public=True)
        await moderation.moderate(core, 1, "hide", agent, reason="spam link")
        assert hide.call_count == 1
        async with core.engine.connect() as conn:
            assert (await conn.execute(sa.select(msg_t.c.moderation))).scalar_one() == "hidden"
            logged = (await conn.execute(sa.select(event_t).where(event_t.c.kind == "moderated"))).one()
        assert logged.user_id == agent and logged.detail == {"action": "hide", "message_id": 1, "reason": "spam link"}
        platform.post("/api/items/in-1/unhide").mock(return_value=httpx.Response(403, json={"error": "not allowed"}))
        with pytest.raises(moderation.ModerationRejected, match="refused to unhide it: not allowed"):
            await moderation.moderate(core, 1, "unhide", agent)
