"""Satisfaction surveys: who gets one, what is stored, answering once, and the figures."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from socialcrm import csat, models, satisfaction
from socialcrm.conversations import reopen, resolve
from socialcrm.replies import compose
from tests.support import add_agent, add_team_and_channel, ev, running_core

survey_t, msg_t, out_t = models.CsatSurvey.__table__, models.Message.__table__, models.OutboxEntry.__table__
event_t, channel_t, conv_t = models.ConversationEvent.__table__, models.Channel.__table__, models.Conversation.__table__
TOKEN_IN_TEXT = re.compile(r"/s/([A-Za-z0-9_-]+)")


@pytest.fixture
async def core(database_url, tmp_path):
    async with running_core(database_url, data_dir=tmp_path, public_url="https://care.example.no/") as core:
        yield core


async def _setup(core, csat_enabled: bool = True) -> tuple[int, int]:
    channel = await add_team_and_channel(core)
    async with core.engine.begin() as conn:
        await conn.execute(channel_t.update().where(channel_t.c.id == channel).values(csat_enabled=csat_enabled))
    core.channels.invalidate()
    return channel, await add_agent(core, "kari")


async def _conversation(core, channel: int, external_id: str, *, public: bool = False, author: str = "cust-1",
                        at=None) -> int:
    from socialcrm import ingest

    loaded = await core.channels.get(channel)
    thread = f"post-{external_id}" if public else author
    async with core.engine.begin() as conn:
        await ingest.apply(conn, loaded.info, [ev("comment" if public else "message", external_id, thread,
                                                  author=author, public=public, at=at or models.utcnow())])
        return await conn.scalar(sa.select(msg_t.c.conversation_id).where(msg_t.c.external_id == external_id))


async def _surveys(core) -> list:
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(survey_t))).all()


async def _survey_message(core, conversation_id: int):
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(msg_t).where(msg_t.c.conversation_id == conversation_id,
                                                          msg_t.c.kind == "survey"))).one()


async def test_resolving_a_private_conversation_queues_one_survey_in_its_channel(core) -> None:
    channel, agent = await _setup(core)
    conv = await _conversation(core, channel, "m-1")
    await resolve(core, conv, agent)

    survey = (await _surveys(core))[0]
    message = await _survey_message(core, conv)
    assert (survey.conversation_id, survey.channel_id, survey.agent_id) == (conv, channel, agent)
    assert survey.message_id == message.id and survey.expires_at - survey.sent_at == timedelta(days=7)
    assert message.direction == "out" and message.public is False and message.author_user_id is None
    token = TOKEN_IN_TEXT.search(message.text).group(1)
    assert message.text.count("https://care.example.no/s/") == 1
    # Only the digest is stored: the link itself is a bearer secret.
    assert survey.token_sha256 == hashlib.sha256(token.encode()).hexdigest() != token
    async with core.engine.connect() as conn:
        entry = (await conn.execute(sa.select(out_t).where(out_t.c.message_id == message.id))).one()
    assert entry.status == "pending" and entry.payload["public"] is False and entry.payload["human_agent"] is False


async def test_public_threads_and_channels_without_csat_get_no_survey(core) -> None:
    channel, agent = await _setup(core)
    public = await _conversation(core, channel, "c-1", public=True)
    await resolve(core, public, agent)
    off_channel = await add_team_and_channel(core, "Other", "brand-2")
    private_elsewhere = await _conversation(core, off_channel, "m-9", author="cust-9")
    await resolve(core, private_elsewhere, agent)
    assert await _surveys(core) == []
    async with core.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(msg_t).where(msg_t.c.kind == "survey")) == 0


async def test_resolving_again_after_a_reopen_does_not_ask_twice(core) -> None:
    channel, agent = await _setup(core)
    conv = await _conversation(core, channel, "m-1")
    await resolve(core, conv, agent)
    await reopen(core, conv, agent)
    await resolve(core, conv, agent)
    assert len(await _surveys(core)) == 1
    offer = await csat.offer_survey(core, conv, agent)
    assert not offer.sent and "already" in offer.reason


async def test_no_survey_once_the_messaging_window_has_closed(core) -> None:
    channel, agent = await _setup(core)
    written = models.utcnow() - timedelta(hours=30)
    conv = await _conversation(core, channel, "m-1", at=written)
    offer = await csat.offer_survey(core, conv, agent)
    assert not offer.sent and "window" in offer.reason
    assert await _surveys(core) == []


async def test_the_survey_message_is_not_a_response_in_the_sla_log(core) -> None:
    channel, agent = await _setup(core)
    conv = await _conversation(core, channel, "m-1")
    await compose(core, conv, agent, "Here is how to fix it")
    await resolve(core, conv, agent)
    async with core.engine.connect() as conn:
        kinds = (await conn.execute(sa.select(event_t.c.kind).where(event_t.c.conversation_id == conv)
                                    .order_by(event_t.c.id))).scalars().all()
        first_response_at = await conn.scalar(sa.select(conv_t.c.first_response_at).where(conv_t.c.id == conv))
    assert kinds.count("first_response") == 1 and "responded" not in kinds
    assert (await _survey_message(core, conv)).id > 0 and first_response_at is not None


async def _sent_token(core, channel: int, agent: int, external_id: str = "m-1") -> tuple[str, int]:
    conv = await _conversation(core, channel, external_id, author=f"cust-{external_id}")
    await resolve(core, conv, agent)
    return TOKEN_IN_TEXT.search((await _survey_message(core, conv)).text).group(1), conv


async def test_a_survey_is_answered_once_and_details_once(core) -> None:
    channel, agent = await _setup(core)
    token, _ = await _sent_token(core, channel, agent)
    assert (await csat.find(core.engine, token)).state == "open"
    await csat.answer(core.engine, token, 4)
    with pytest.raises(csat.SurveyRejected) as again:
        await csat.answer(core.engine, token, 1)
    assert again.value.status == 409
    await csat.add_details(core.engine, token, True, False, "Quick and kind")
    with pytest.raises(csat.SurveyRejected) as twice:
        await csat.add_details(core.engine, token, False, False, "changed my mind")
    assert twice.value.status == 409
    row = (await _surveys(core))[0]
    assert (row.rating, row.first_contact, row.self_help, row.comment) == (4, True, False, "Quick and kind")


async def test_expired_and_unknown_links_are_refused_and_store_nothing(core) -> None:
    channel, agent = await _setup(core)
    token, _ = await _sent_token(core, channel, agent)
    later = models.utcnow() + timedelta(days=8)
    assert (await csat.find(core.engine, token, later)).state == "expired"
    with pytest.raises(csat.SurveyRejected) as expired:
        await csat.answer(core.engine, token, 5, now=later)
    with pytest.raises(csat.SurveyRejected) as unknown:
        await csat.answer(core.engine, "not-a-token", 5)
    with pytest.raises(csat.SurveyRejected) as details_first:
        await csat.add_details(core.engine, token, True, True, "")
    assert (expired.value.status, unknown.value.status, details_first.value.status) == (410, 404, 400)
    assert (await _surveys(core))[0].rating is None


@pytest.mark.parametrize("value", ["0", "6", "", "five", None, "3.5"])
def test_a_rating_outside_1_to_5_is_refused(value) -> None:
    with pytest.raises(csat.SurveyRejected) as refused:
        csat.parse_rating(value)
    assert refused.value.status == 400


def test_answers_are_parsed_strictly() -> None:
    assert [csat.parse_yes_no(v) for v in ("yes", "No", "", None)] == [True, False, None, None]
    with pytest.raises(csat.SurveyRejected):
        csat.parse_yes_no("maybe")
    assert csat.parse_comment("  takk\x00 ") == "takk"
    with pytest.raises(csat.SurveyRejected):
        csat.parse_comment("x" * (csat.COMMENT_MAX + 1))


async def test_figures_per_agent_match_the_answers_and_the_event_log(core) -> None:
    channel, kari = await _setup(core)
    ola = await add_agent(core, "ola")
    answers = {("a", kari): 5, ("b", kari): 2, ("c", ola): 4}
    convs = {}
    for (ext, agent), rating in answers.items():
        token, conv = await _sent_token(core, channel, agent, ext)
        convs[ext] = conv
        await csat.answer(core.engine, token, rating)
    await _sent_token(core, channel, ola, "d")                    # sent, never answered
    await reopen(core, convs["b"], kari)                          # reopened: not a first-contact resolution
    now = models.utcnow()
    async with core.engine.connect() as conn:
        report = await satisfaction.report(conn, now - timedelta(days=1), now + timedelta(minutes=1),
                                           now + timedelta(days=8), "agent")
    by_name = {row.label: row for row in report.rows}
    assert set(by_name) == {"Kari", "Ola"}
    assert (len(by_name["Kari"].sent), by_name["Kari"].answered, by_name["Kari"].average_rating) == (2, 2, 3.5)
    assert by_name["Kari"].csat_pct == 50.0 and by_name["Kari"].ids("unsatisfied") == [convs["b"]]
    assert by_name["Ola"].response_rate_pct == 50.0 and by_name["Ola"].csat_pct == 100.0
    # No agent replied in these conversations, so none is a first-contact resolution.
    assert report.total.fcr_pct == 0.0 and sorted(report.total.ids("fcr_no")) == sorted(
        [*convs.values(), report.total.sent[-1]])
    assert report.total.answered == 3 and report.total.csat_pct == pytest.approx(200 / 3)


async def test_first_contact_resolution_counts_one_human_reply_and_no_reopen(core) -> None:
    channel, kari = await _setup(core)
    one_reply = await _conversation(core, channel, "m-1", author="cust-1")
    await compose(core, one_reply, kari, "Done: here is the guide")
    await resolve(core, one_reply, kari)
    two_replies = await _conversation(core, channel, "m-2", author="cust-2")
    await compose(core, two_replies, kari, "Looking into it")
    await _conversation(core, channel, "m-3", author="cust-2")      # the customer writes again
    await compose(core, two_replies, kari, "Fixed now")
    await resolve(core, two_replies, kari)
    now = models.utcnow()
    async with core.engine.connect() as conn:
        decided = await satisfaction.report(conn, now - timedelta(hours=1), now + timedelta(minutes=1),
                                            now + timedelta(days=7, minutes=5), "team")
        too_early = await satisfaction.report(conn, now - timedelta(hours=1), now + timedelta(minutes=1),
                                              now + timedelta(days=1), "team")
    (team,) = decided.rows
    assert team.ids("fcr_yes") == [one_reply] and team.ids("fcr_no") == [two_replies] and team.fcr_pct == 50.0
    assert too_early.rows[0].fcr["undecided"] == [one_reply]
