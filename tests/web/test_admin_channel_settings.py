"""Per-channel settings (team, targets, auto-assign, CSAT, signature), removing a channel with its
history kept, and the health-warning banner on admin pages."""

from __future__ import annotations

import sqlalchemy as sa

from socialcrm import audit, models, replies, routing
from socialcrm.conversations import set_presence
from socialcrm.models import utcnow
from socialcrm.outbox import Dispatcher
from socialcrm.users import create_user
from tests.support import ev, signed, sim_item
from tests.web.conftest import PASSWORD, SignIn, World, conversation_of

channel_t, conv_t, msg_t = models.Channel.__table__, models.Conversation.__table__, models.Message.__table__
outbox_t, team_t = models.OutboxEntry.__table__, models.Team.__table__
SIGNATURE = "– {agent}, Kundeservice"


async def _admin(world: World, signed_in: SignIn):
    await create_user(world.core.engine, "admin", PASSWORD, "admin", "Ada Admin")
    b = await signed_in("admin")
    return b


async def channel(world: World, channel_id: int):
    async with world.core.engine.connect() as conn:
        return (await conn.execute(sa.select(channel_t).where(channel_t.c.id == channel_id))).one()


async def team_id(world: World, name: str) -> int:
    async with world.core.engine.connect() as conn:
        return await conn.scalar(sa.select(team_t.c.id).where(team_t.c.name == name))


def settings_form(team: int, **overrides: str) -> dict[str, str]:
    form = {"team_id": str(team), "sla_public_minutes": "", "sla_private_minutes": "", "auto_assign": "1",
            "reply_signature": ""}
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


async def save(b, world: World, channel_id: int, form: dict[str, str]):
    await b.get(f"/admin/channels/{channel_id}")
    return await b.post(f"/admin/channels/{channel_id}/settings", form)


# -- settings ---------------------------------------------------------------------------------------

async def test_settings_persist_and_are_audited(world: World, signed_in: SignIn) -> None:
    b = await _admin(world, signed_in)
    other = await team_id(world, "Other")
    form = settings_form(other, sla_public_minutes="45", sla_private_minutes="", auto_assign=None,
                         csat_enabled="1", reply_signature=SIGNATURE)
    resp, _ = await save(b, world, world.care_channel, form)
    assert resp.status == 303
    row = await channel(world, world.care_channel)
    assert (row.team_id, row.sla_public_minutes, row.sla_private_minutes) == (other, 45, None)
    assert (row.auto_assign, row.csat_enabled, row.reply_signature) == (False, True, SIGNATURE)
    loaded = await world.core.channels.get(world.care_channel)     # the cache was invalidated
    assert loaded.row.reply_signature == SIGNATURE and loaded.info.sla_public_minutes == 45
    assert loaded.info.sla_private_minutes == world.core.settings.sla_private_minutes   # blank = the default
    [entry] = await audit.entries(world.core.engine, action="channel.settings")
    assert entry.actor == "admin" and entry.target == f"channel {world.care_channel} (Sim brand)"
    assert entry.before == {"team_id": 1, "sla_public_minutes": None, "auto_assign": True,
                            "csat_enabled": False, "reply_signature": ""}
    assert entry.after == {"team_id": other, "sla_public_minutes": 45, "auto_assign": False,
                           "csat_enabled": True, "reply_signature": SIGNATURE}
    _, page = await b.get(resp.headers["Location"])
    assert 'value="45"' in page and f'value="{SIGNATURE}"' in page and "Settings saved" in page


async def test_bad_settings_are_refused_in_words_and_nothing_changes(world: World, signed_in: SignIn) -> None:
    b = await _admin(world, signed_in)
    resp, text = await save(b, world, world.care_channel,
                            settings_form(999, sla_public_minutes="-5", reply_signature="x" * 201))
    assert resp.status == 422
    assert "team: choose the team" in text and "first-response target (public)" in text
    assert "signature: at most 200 characters" in text
    row = await channel(world, world.care_channel)
    assert row.team_id == 1 and row.sla_public_minutes is None and row.reply_signature == ""
    assert await audit.entries(world.core.engine, action="channel.settings") == []


async def test_non_admins_cannot_change_settings(world: World, signed_in: SignIn) -> None:
    b = await signed_in("lead")
    resp, _ = await save(b, world, world.care_channel, settings_form(1, auto_assign=None))
    assert resp.status == 403
    assert (await channel(world, world.care_channel)).auto_assign is True


async def test_the_router_respects_auto_assign_off(world: World, signed_in: SignIn) -> None:
    b = await _admin(world, signed_in)
    await set_presence(world.core, world.agent_id, True)
    resp, _ = await save(b, world, world.care_channel, settings_form(1, auto_assign=None))
    assert resp.status == 303
    await world.ingest(world.care_channel, [ev("message", "in-1", "cust-1", at=utcnow())])
    conv_id = await conversation_of(world.core, world.care_channel, "in-1")
    async with world.core.engine.begin() as conn:
        assert await routing.route(conn) == []
        assert await conn.scalar(sa.select(conv_t.c.assignee_id).where(conv_t.c.id == conv_id)) is None
    await save(b, world, world.care_channel, settings_form(1))          # on again: now it is assigned
    async with world.core.engine.begin() as conn:
        assert [a.conversation_id for a in await routing.route(conn)] == [conv_id]


# -- the signature ----------------------------------------------------------------------------------

async def _sign(world: World, signature: str = SIGNATURE) -> None:
    async with world.core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel)
                           .values(reply_signature=signature))
    world.core.channels.invalidate()


async def _conversation(world: World, public: bool) -> int:
    kind, thread = ("comment", "post-1") if public else ("message", "cust-1")
    ext = "c-1" if public else "m-1"
    await world.ingest(world.care_channel, [ev(kind, ext, thread, public=public, at=utcnow())])
    return await conversation_of(world.core, world.care_channel, ext)


async def _text(world: World, message_id: int) -> str:
    async with world.core.engine.connect() as conn:
        return await conn.scalar(sa.select(msg_t.c.text).where(msg_t.c.id == message_id))


async def test_the_signature_goes_under_public_replies_only(world: World) -> None:
    await _sign(world)
    public, private = await _conversation(world, True), await _conversation(world, False)
    sent = await replies.compose(world.core, public, world.agent_id, "Vi ser på saken.")
    assert await _text(world, sent) == "Vi ser på saken.\n– Kari Agent, Kundeservice"
    async with world.core.engine.connect() as conn:
        payload = await conn.scalar(sa.select(outbox_t.c.payload).where(outbox_t.c.message_id == sent))
    assert payload["text"].endswith("\n– Kari Agent, Kundeservice")      # what the platform gets
    sent = await replies.compose(world.core, private, world.agent_id, "Hei!")
    assert await _text(world, sent) == "Hei!"


async def test_the_signature_counts_against_the_length_limit(world: World) -> None:
    await _sign(world)
    public = await _conversation(world, True)
    limit = (await world.core.channels.get(world.care_channel)).connector.capabilities.max_length(True)
    fits_alone = "x" * (limit - 5)
    try:
        await replies.compose(world.core, public, world.agent_id, fits_alone)
    except replies.ReplyRejected as exc:
        reason = str(exc)
    else:
        raise AssertionError("a reply too long with its signature was queued")
    signed_length = limit - 5 + 1 + len("– Kari Agent, Kundeservice")
    assert "Too long for a" in reason and f"{signed_length} of at most {limit}" in reason
    await _sign(world, "")
    assert await _text(world, await replies.compose(world.core, public, world.agent_id, fits_alone)) == fits_alone


async def test_the_composer_shows_the_signature(world: World, signed_in: SignIn) -> None:
    await _sign(world)
    public, private = await _conversation(world, True), await _conversation(world, False)
    agent = await signed_in("agent")
    _, page = await agent.get(f"/conversations/{public}")
    assert 'id="reply-signature"' in page and ", Kundeservice" in page
    _, page = await agent.get(f"/conversations/{private}")
    assert 'id="reply-signature"' not in page


# -- removing a channel -----------------------------------------------------------------------------

async def test_a_removed_channel_keeps_its_history_and_stops(world: World, signed_in: SignIn) -> None:
    conv_id = await _conversation(world, False)
    b = await _admin(world, signed_in)
    await b.get(f"/admin/channels/{world.care_channel}")
    resp, _ = await b.post(f"/admin/channels/{world.care_channel}/status", {"action": "remove"})
    assert resp.status == 303 and resp.headers["Location"] == "/admin/channels"
    assert (await channel(world, world.care_channel)).status == "removed"
    [entry] = await audit.entries(world.core.engine, action="channel.remove")
    assert entry.before["status"] == "active" and entry.after["status"] == "removed"

    body, headers = signed([sim_item("dm", "m-2")])
    resp = await b.session.post(f"/webhooks/simulator/{world.care_channel}", data=body, headers=headers)
    assert resp.status == 404
    resp = await b.session.post(f"/webhooks/simulator/{world.other_channel}", data=body, headers=headers)
    assert resp.status != 404                                          # the other channel still listens

    _, listing = await b.get("/admin/channels")
    assert f'href="/admin/channels/{world.care_channel}"' not in listing
    assert f'href="/admin/channels/{world.other_channel}"' in listing
    _, listing = await b.get("/admin/channels?show=removed")
    assert f'href="/admin/channels/{world.care_channel}"' in listing and "removed" in listing

    lead = await signed_in("lead")
    resp, page = await lead.get(f"/conversations/{conv_id}")
    assert resp.status == 200 and "hello" in page and "has been removed" in page


async def test_a_removed_channel_is_not_polled_nor_sent_through(world: World) -> None:
    conv_id = await _conversation(world, False)
    await replies.compose(world.core, conv_id, world.agent_id, "Hei!")
    async with world.core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel)
                           .values(status="removed", poll_enabled=True))
    world.core.channels.invalidate()
    dispatcher = Dispatcher(world.core.engine, world.core.channels, world.core.hub)
    assert await dispatcher.claim() == []
    polled: list[int] = []

    async def poll_channel(c, **_options) -> int:
        polled.append(c.id)
        return 0

    world.core.poller.poll_channel = poll_channel          # type: ignore[method-assign]
    await world.core.poller.poll_due()
    assert polled == []
    async with world.core.engine.begin() as conn:          # the same, active: both go
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel).values(status="active"))
    world.core.channels.invalidate()
    await world.core.poller.poll_due()
    assert polled == [world.care_channel] and len(await dispatcher.claim()) == 1


async def test_replies_to_a_removed_channel_are_refused(world: World) -> None:
    conv_id = await _conversation(world, False)
    async with world.core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel).values(status="removed"))
    world.core.channels.invalidate()
    try:
        await replies.compose(world.core, conv_id, world.agent_id, "Hei!")
    except replies.ReplyRejected as exc:
        assert "removed" in str(exc)
    else:
        raise AssertionError("a reply was queued for a removed channel")


# -- the banner -------------------------------------------------------------------------------------

async def test_the_banner_names_a_channel_that_needs_reauthorisation(world: World, signed_in: SignIn) -> None:
    b = await _admin(world, signed_in)
    _, page = await b.get("/admin/channels")
    assert "health-warnings" not in page
    async with world.core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == world.care_channel)
                           .values(status="needs_reauth", status_reason="token revoked"))
    for path in ("/admin/channels", "/admin/users", f"/admin/channels/{world.care_channel}"):
        resp, page = await b.get(path)
        assert resp.status == 200
        assert "health-warnings" in page and "Channel Sim brand: Needs re-authorisation: token revoked" in page
    agent = await signed_in("agent")
    _, page = await agent.get("/")
    assert "health-warnings" not in page                              # admins only
