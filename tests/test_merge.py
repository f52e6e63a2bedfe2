"""Merge suggestions: detection from what customers wrote and who they are; accept, undo, dismiss."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa

from socialcrm import audit, ingest, merge, models
from socialcrm.connector import Author
from tests.support import T0, add_team_and_channel, ev, running_core

ident_t, conv_t = models.Identity.__table__, models.Conversation.__table__
sugg_t, msg_t = models.MergeSuggestion.__table__, models.Message.__table__


def said(external_id: str, author: str, text: str = "hei", *, minute: int = 0, name: str | None = None,
         handle: str = "", avatar: str = "", thread: str | None = None, public: bool = False, is_self: bool = False):
    event = ev("comment" if public else "message", external_id, thread or author, author=author, text=text,
               public=public, at=T0 + timedelta(minutes=minute), is_self=is_self)
    return dataclasses.replace(event, author=Author(external_id=author, name=name or author.title(), handle=handle,
                                                    avatar_url=avatar or None, is_self=is_self))


async def put(core, channel_id, events) -> None:
    channel = await core.channels.get(channel_id)
    async with core.engine.begin() as conn:
        await ingest.apply(conn, channel.info, events)


async def contact_of(core, channel_id: int, author: str) -> int:
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(ident_t.c.contact_id).where(
            ident_t.c.channel_id == channel_id, ident_t.c.external_id == author))


async def suggestions(core) -> list:
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(sugg_t).order_by(sugg_t.c.id))).all()


async def user(core) -> int:
    from socialcrm.users import create_user

    return (await create_user(core.engine, "kari", "correct horse battery", "agent", "Kari", ["Care"])).id


@pytest.fixture
async def two_channels(database_url):
    async with running_core(database_url) as core:
        fb = await add_team_and_channel(core, "Care", "brand")
        mail = await add_team_and_channel(core, "Care", "brand-mail", secret="s2")
        yield core, fb, mail


# -- what counts as an e-mail address or a phone number ------------------------------------------

def test_emails_are_lowercased_and_trailing_dots_dropped():
    assert merge.emails_in("Skriv til Ola.Nordmann@Example.NO. Takk") == {"ola.nordmann@example.no"}
    assert merge.emails_in("no address @ here, nor user@localhost") == set()


@pytest.mark.parametrize("text, phones", [
    ("ring meg på +47 912 34 567", {"+4791234567"}),
    ("tlf 91234567", {"+4791234567"}),
    ("mobil: 912-34-567", {"+4791234567"}),
    ("0047 91 23 45 67 is my number", {"+4791234567"}),
    ("070-123 45 67", {"+46701234567"}),
    ("Ordre 91234567 kom aldri", set()),              # an order number, not a phone
    ("ordrenr. 912 34 567", set()),
    ("Invoice #91234567", set()),
    ("91234567", set()),                              # bare eight digits: could be anything
    ("kvittering 4123 4567", set()),
    ("on 2024-11-25 at 12:00", set()),
    ("+47 123", set()),                               # too short to be a phone
])
def test_phone_numbers_need_to_look_like_phone_numbers(text, phones):
    assert merge.phones_in(text) == phones


# -- detection -----------------------------------------------------------------------------------

async def test_same_email_written_on_two_channels_is_suggested_once_with_the_reason(two_channels):
    core, fb, mail = two_channels
    await put(core, fb, [said("f1", "psid-1", "Min e-post er OLA@example.no", name="Ola N")])
    await put(core, mail, [said("e1", "ola-mail", "hei, ola@example.no her", name="Ola Nordmann")])
    assert await merge.detect(core.engine) == 1
    [s] = await suggestions(core)
    older, newer = await contact_of(core, fb, "psid-1"), await contact_of(core, mail, "ola-mail")
    assert (s.keep_contact_id, s.merge_contact_id, s.kind, s.status) == (older, newer, "email", "open")
    assert s.reason == "both wrote ola@example.no"
    await put(core, mail, [said("e2", "ola-mail", "again: ola@example.no")])
    assert await merge.detect(core.engine) == 0          # incremental, and one row per pair
    assert len(await suggestions(core)) == 1


async def test_detection_reads_only_new_messages(two_channels):
    core, fb, mail = two_channels
    await put(core, fb, [said("f1", "a", "tlf 912 34 567")])
    assert await merge.detect(core.engine) == 0
    await put(core, mail, [said("e1", "b", "+47 91234567")])
    assert await merge.detect(core.engine) == 1
    assert (await suggestions(core))[0].reason == "both wrote +4791234567"


async def test_a_value_many_customers_write_is_no_evidence(two_channels):
    core, fb, mail = two_channels
    await put(core, fb, [said("f1", "a", "I wrote to support@brand.no"), said("f2", "b", "support@brand.no never answers")])
    await put(core, mail, [said("e1", "c", "cc support@brand.no")])
    assert await merge.detect(core.engine) == 0
    assert await suggestions(core) == []


async def test_replies_and_the_brand_itself_are_not_evidence(two_channels):
    core, fb, mail = two_channels
    await put(core, fb, [said("f1", "a", "ola@example.no")])
    await put(core, mail, [said("e1", "brand-self", "ola@example.no", is_self=True)])
    async with core.engine.begin() as conn:     # an agent's reply quoting the address
        conv = await conn.scalar(sa.select(msg_t.c.conversation_id).where(msg_t.c.external_id == "f1"))
        await conn.execute(msg_t.insert().values(conversation_id=conv, channel_id=fb, direction="out", text="ola@example.no?",
                                                 status="sent", attachments=[], reactions={}, created_at=T0))
    assert await merge.detect(core.engine) == 0
    assert await suggestions(core) == []


async def test_same_handle_on_two_channels(two_channels):
    core, fb, mail = two_channels
    await put(core, fb, [said("f1", "ig-1", handle="OlaNordmann")])
    await put(core, mail, [said("e1", "x-1", handle="@olanordmann")])
    await put(core, mail, [said("e2", "x-2", handle="ab")])           # too short to mean anything
    assert await merge.detect(core.engine) == 1
    [s] = await suggestions(core)
    assert s.kind == "handle" and s.reason == "both are @OlaNordmann (Sim brand and Sim brand-mail)"


async def test_same_name_and_picture(two_channels):
    core, fb, mail = two_channels
    pic = "https://cdn.example/p/1.jpg"
    await put(core, fb, [said("f1", "a", name="Kari Hansen", avatar=pic)])
    await put(core, mail, [said("e1", "b", name="kari hansen ", avatar=pic),
                           said("e2", "c", name="Someone Else", avatar=pic)])
    assert await merge.detect(core.engine) == 1
    [s] = await suggestions(core)
    assert s.kind == "name_avatar" and "same name (Kari Hansen) and same picture" in s.reason


# -- accept, undo, dismiss ------------------------------------------------------------------------

async def _suggested(core, fb, mail) -> tuple[int, int, int]:
    await put(core, fb, [said("f1", "a", "ola@example.no", minute=1),
                         said("f2", "a", "public too", minute=2, public=True, thread="post-1")])
    await put(core, mail, [said("e1", "b", "ola@example.no", minute=3)])
    await merge.detect(core.engine)
    [s] = await suggestions(core)
    return s.id, s.keep_contact_id, s.merge_contact_id


async def contacts_of_everything(core) -> tuple[dict, dict]:
    async with core.engine.connect() as conn:
        identities = dict((await conn.execute(sa.select(ident_t.c.id, ident_t.c.contact_id))).all())
        conversations = dict((await conn.execute(sa.select(conv_t.c.id, conv_t.c.contact_id))).all())
    return identities, conversations


async def test_accept_moves_identities_and_conversations_and_undo_restores_exactly(two_channels):
    core, fb, mail = two_channels
    agent = await user(core)
    sid, keep, other = await _suggested(core, fb, mail)
    before = await contacts_of_everything(core)
    moved = await merge.accept(core.engine, sid, agent)
    identities, conversations = await contacts_of_everything(core)
    assert set(identities.values()) == {keep} and set(conversations.values()) == {keep}
    assert moved == {"identities": [i for i, c in before[0].items() if c == other],
                     "conversations": [c for c, k in before[1].items() if k == other]}
    assert (await suggestions(core))[0].status == "accepted"
    await merge.undo(core.engine, sid, agent)
    assert await contacts_of_everything(core) == before
    assert (await suggestions(core))[0].status == "open"       # the evidence still stands
    entries = await audit.entries(core.engine, action="contact")
    assert [e.action for e in entries] == ["contact.unmerge", "contact.merge"]
    assert entries[1].actor_id == agent and entries[1].before["identities"] == moved["identities"]
    assert entries[1].after == {"contact_id": keep, "reason": "both wrote ola@example.no"}


async def test_undo_takes_along_conversations_the_moved_identity_started_since(two_channels):
    core, fb, mail = two_channels
    agent = await user(core)
    sid, keep, other = await _suggested(core, fb, mail)
    await merge.accept(core.engine, sid, agent)
    await put(core, mail, [said("e9", "b", "new thread", minute=9, thread="another-thread")])
    async with core.engine.connect() as conn:
        new_conv = await conn.scalar(sa.select(msg_t.c.conversation_id).where(msg_t.c.external_id == "e9"))
        assert await conn.scalar(sa.select(conv_t.c.contact_id).where(conv_t.c.id == new_conv)) == keep
    back = await merge.undo(core.engine, sid, agent)
    assert new_conv in back["conversations"]
    async with core.engine.connect() as conn:
        assert await conn.scalar(sa.select(conv_t.c.contact_id).where(conv_t.c.id == new_conv)) == other
        fb_contact = await conn.scalar(sa.select(ident_t.c.contact_id).where(ident_t.c.external_id == "a"))
    assert fb_contact == keep


async def test_nothing_merges_by_itself(two_channels):
    core, fb, mail = two_channels
    _, keep, other = await _suggested(core, fb, mail)
    await merge.detect(core.engine)
    assert await contact_of(core, mail, "b") == other != keep


async def test_dismiss_hides_the_pair_for_good(two_channels):
    core, fb, mail = two_channels
    agent = await user(core)
    sid, keep, _ = await _suggested(core, fb, mail)
    await merge.dismiss(core.engine, sid, agent)
    await put(core, mail, [said("e2", "b", "ola@example.no, +47 912 34 567"), ])
    await put(core, fb, [said("f3", "a", "tlf 912 34 567")])
    await merge.detect(core.engine)
    assert [s.status for s in await suggestions(core)] == ["dismissed"]
    async with core.engine.connect() as conn:
        assert await merge.suggestions_for(conn, keep) == []
    assert [e.action for e in await audit.entries(core.engine, action="contact")] == ["contact.merge_dismiss"]
    with pytest.raises(merge.MergeRejected, match="already dismissed"):
        await merge.accept(core.engine, sid, agent)


async def test_decisions_in_the_wrong_state_are_refused_and_change_nothing(two_channels):
    core, fb, mail = two_channels
    agent = await user(core)
    sid, _, _ = await _suggested(core, fb, mail)
    with pytest.raises(merge.MergeRejected, match="Only an accepted merge"):
        await merge.undo(core.engine, sid, agent)
    await merge.accept(core.engine, sid, agent)
    state = await contacts_of_everything(core)
    with pytest.raises(merge.MergeRejected, match="already accepted"):
        await merge.accept(core.engine, sid, agent)
    with pytest.raises(merge.MergeRejected, match="already accepted"):
        await merge.dismiss(core.engine, sid, agent)
    with pytest.raises(merge.MergeRejected, match="no such"):
        await merge.accept(core.engine, 9999, agent)
    assert await contacts_of_everything(core) == state
    assert len(await audit.entries(core.engine, action="contact")) == 1


async def test_undo_is_refused_when_the_accounts_moved_on(two_channels):
    """A then C: undoing the first merge after the kept contact was merged again would scatter accounts."""
    core, fb, mail = two_channels
    agent = await user(core)
    sid, keep, other = await _suggested(core, fb, mail)
    await merge.accept(core.engine, sid, agent)
    async with core.engine.begin() as conn:    # someone merged the result into a third contact by hand
        third = (await conn.execute(models.Contact.__table__.insert().values(name="Third", created_at=T0))).inserted_primary_key[0]
        await conn.execute(ident_t.update().where(ident_t.c.contact_id == keep).values(contact_id=third))
    with pytest.raises(merge.MergeRejected, match="undo that first"):
        await merge.undo(core.engine, sid, agent)
    assert len(await audit.entries(core.engine, action="contact")) == 1


async def test_a_suggestion_about_a_customer_who_was_merged_away_is_hidden_and_refused(two_channels):
    core, fb, mail = two_channels
    agent = await user(core)
    await put(core, fb, [said("f1", "a", "ola@example.no", minute=1)])
    await put(core, mail, [said("e1", "b", "ola@example.no tlf 912 34 567", minute=2)])
    third_channel = await add_team_and_channel(core, "Care", "brand-3", secret="s3")
    await put(core, third_channel, [said("t1", "c", "+4791234567", minute=3)])
    await merge.detect(core.engine)
    first, second = await suggestions(core)       # a+b (e-mail), b+c (phone)
    await merge.accept(core.engine, first.id, agent)      # b joins a: b has no accounts left
    async with core.engine.connect() as conn:
        assert [s.id for s in await merge.suggestions_for(conn, second.keep_contact_id)] == []
        assert [s.id for s in await merge.suggestions_for(conn, second.merge_contact_id)] == []
    with pytest.raises(merge.MergeRejected, match="no accounts left"):
        await merge.accept(core.engine, second.id, agent)


async def test_panel_lists_every_identity_and_conversation_newest_first(two_channels):
    from socialcrm.users import Viewer

    core, fb, mail = two_channels
    agent = await user(core)
    sid, keep, _ = await _suggested(core, fb, mail)
    await merge.accept(core.engine, sid, agent)
    lead = Viewer(id=agent, username="l", display_name="", role="lead", online=True, session_epoch=0,
                  team_ids=frozenset())
    panel = await merge.panel(core.engine, lead, keep, limit=2)
    assert [i.external_id for i in panel.identities] == ["a", "b"]
    assert [c.last_message_preview for c in panel.conversations] == ["ola@example.no", "public too"]
    assert panel.more and [s.status for s in panel.suggestions] == ["accepted"]
    stranger = dataclasses.replace(lead, role="agent", team_ids=frozenset({999}))
    assert await merge.panel(core.engine, stranger, keep) is None


async def test_detection_catches_up_in_batches(two_channels):
    core, fb, mail = two_channels
    await put(core, fb, [said(f"f{i}", f"a{i}", f"message {i}", minute=i) for i in range(5)]
              + [said("f9", "ola", "ola@example.no", minute=9)])
    await put(core, mail, [said("e1", "b", "ola@example.no", minute=10)])
    assert await merge.detect(core.engine, batch=2, rounds=2) == 0      # 4 of 7 messages read
    assert await merge.detect(core.engine, batch=2, rounds=10) == 1
    async with core.engine.connect() as conn:
        assert await conn.scalar(sa.select(models.MergeScan.__table__.c.last_id)
                                 .where(models.MergeScan.__table__.c.name == "messages")) == 7
