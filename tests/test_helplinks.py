"""Help articles and their counted short links: codes, clicks, previews, and replies that carry them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from socialcrm import helplinks, ingest, models, replies
from socialcrm.helplinks import ArticleRejected
from tests.support import T0, add_agent, add_team_and_channel, ev, running_core

link_t, msg_t, out_t = models.HelpLink.__table__, models.Message.__table__, models.OutboxEntry.__table__
PUBLIC = "https://crm.example.com/"
FAQ = "https://help.acme.no/returns"


# -- pure rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize("agent", [
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0", "TelegramBot (like TwitterBot)", "WhatsApp/2.23.20.0 A",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "Mastodon/4.2.1 (http.rb/5.1.1; +https://m.example/)",
    "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "", "   ", None,
])
def test_link_preview_fetchers_and_crawlers_are_not_customers(agent: str | None) -> None:
    assert helplinks.is_preview_fetcher(agent)


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (Android 14; Mobile; rv:131.0) Gecko/131.0 Firefox/131.0",
])
def test_browsers_are_customers(agent: str) -> None:
    assert not helplinks.is_preview_fetcher(agent)


@pytest.mark.parametrize(("title", "url", "reason"), [
    ("", FAQ, "title"),
    ("Returns", "javascript:alert(1)", "http"),
    ("Returns", "help.acme.no/returns", "http"),
    ("Returns", "https:///nohost", "http"),
    ("Returns", "https://help.acme.no/a b", "spaces"),
    ("Returns", "https://help.acme.no/" + "a" * 2000, "too long"),
])
def test_bad_articles_are_refused_with_a_reason(title: str, url: str, reason: str) -> None:
    with pytest.raises(ArticleRejected, match=reason):
        helplinks.check_article(title, url)


def test_short_links_are_absolute_and_found_again_in_text() -> None:
    url = helplinks.short_url(PUBLIC, "AbCd2345")
    assert url == "https://crm.example.com/l/AbCd2345"
    text = f"See {url}. Or ({helplinks.short_url(PUBLIC, 'Zz99zz99')}) and https://elsewhere.example/l/Nope1234"
    assert helplinks.codes_in(PUBLIC, text) == ["AbCd2345", "Zz99zz99"]
    code = helplinks.new_code()
    assert len(code) == helplinks.CODE_LENGTH and helplinks.CODE.match(code)


# -- stored links and clicks ----------------------------------------------------------------------

async def _public_conversation(core, *, thread: str = "post-1", author: str = "cust-1") -> tuple[int, int]:
    async with core.engine.connect() as conn:
        channel_id = await conn.scalar(sa.select(models.Channel.__table__.c.id))
    if channel_id is None:
        channel_id = await add_team_and_channel(core)
    info = (await core.channels.get(channel_id)).info
    async with core.engine.begin() as conn:
        await ingest.apply(conn, info, [ev("comment", f"in-{thread}-{author}", thread, author=author, public=True,
                                           at=models.utcnow() - timedelta(minutes=5))])
        conv = await conn.scalar(sa.select(models.Conversation.__table__.c.id)
                                 .where(models.Conversation.__table__.c.thread_external_id == thread,
                                        models.Conversation.__table__.c.channel_id == channel_id)
                                 .order_by(models.Conversation.__table__.c.id.desc()))
    return conv, channel_id


async def _link(core, conv: int, channel: int, agent: int | None) -> str:
    article = await helplinks.create_article(core.engine, agent, "Returns", FAQ)
    links = await helplinks.links_for(core.engine, PUBLIC, [article], conv, channel, agent)
    return links[article].rsplit("/", 1)[1]


async def test_one_code_per_article_and_conversation_even_when_two_agents_race(database_url: str) -> None:
    async with running_core(database_url, public_url=PUBLIC) as core:
        conv, channel = await _public_conversation(core)
        conv2, _ = await _public_conversation(core, thread="post-2")
        agent = await add_agent(core, "kari", online=False)
        article = await helplinks.create_article(core.engine, agent, "Returns", FAQ)
        both = await asyncio.gather(*(helplinks.links_for(core.engine, PUBLIC, [article], conv, channel, agent)
                                      for _ in range(2)))
        assert both[0] == both[1]
        other = await helplinks.links_for(core.engine, PUBLIC, [article], conv2, channel, agent)
        assert other[article] != both[0][article]
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(link_t)) == 2


async def test_archived_or_unknown_articles_get_no_link_but_old_links_still_redirect(database_url: str) -> None:
    async with running_core(database_url, public_url=PUBLIC) as core:
        conv, channel = await _public_conversation(core)
        agent = await add_agent(core, "kari", online=False)
        code = await _link(core, conv, channel, agent)
        article = await _article_id(core, code)
        await helplinks.update_article(core.engine, agent, article, "Returns", FAQ, active=False)
        assert await helplinks.links_for(core.engine, PUBLIC, [article, 999], conv, channel, agent) == {}
        assert await helplinks.follow(core.engine, code, count=True, now=T0) == FAQ


async def _article_id(core, code: str) -> int:
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(link_t.c.article_id).where(link_t.c.code == code))


async def _clicks(core, code: str):
    async with core.engine.connect() as conn:
        return (await conn.execute(sa.select(link_t.c.clicks, link_t.c.first_click_at, link_t.c.last_click_at)
                                   .where(link_t.c.code == code))).one()


async def test_clicks_are_counted_only_when_asked_and_unknown_codes_lead_nowhere(database_url: str) -> None:
    async with running_core(database_url, public_url=PUBLIC) as core:
        conv, channel = await _public_conversation(core)
        code = await _link(core, conv, channel, None)
        assert await helplinks.follow(core.engine, code, count=True, now=T0) == FAQ
        assert await helplinks.follow(core.engine, code, count=False, now=T0 + timedelta(hours=1)) == FAQ
        assert await helplinks.follow(core.engine, code, count=True, now=T0 + timedelta(hours=2)) == FAQ
        assert tuple(await _clicks(core, code)) == (2, T0, T0 + timedelta(hours=2))
        assert await helplinks.follow(core.engine, "Unknown9", count=True, now=T0) is None
        assert await helplinks.follow(core.engine, "../../etc", count=True, now=T0) is None


async def test_the_article_page_figures_count_sends_clicks_and_conversations(database_url: str) -> None:
    async with running_core(database_url, public_url=PUBLIC) as core:
        conv, channel = await _public_conversation(core)
        conv2, _ = await _public_conversation(core, thread="post-2")
        agent = await add_agent(core, "kari", online=False)
        article = await helplinks.create_article(core.engine, agent, "Returns", FAQ)
        await helplinks.create_article(core.engine, agent, "Unused", "https://help.acme.no/unused")
        for c in (conv, conv2):
            url = (await helplinks.links_for(core.engine, PUBLIC, [article], c, channel, agent))[article]
            await replies.compose(core, c, agent, f"Read this: {url}")
        first = (await helplinks.links_for(core.engine, PUBLIC, [article], conv, channel, agent))[article]
        for _ in range(3):
            await helplinks.follow(core.engine, first.rsplit("/", 1)[1], count=True, now=T0)
        async with core.engine.connect() as conn:
            stats = {s.title: s for s in await helplinks.article_stats(conn)}
            by_agent = await helplinks.clicks_by(conn, article, "agent_id")
            by_channel = await helplinks.clicks_by(conn, article, "channel_id")
        assert (stats["Returns"].sent, stats["Returns"].clicks, stats["Returns"].clicked_conversations) == (2, 3, 1)
        assert (stats["Unused"].sent, stats["Unused"].clicks) == (0, 0)
        assert by_agent == [(agent, 2, 3)] and by_channel == [(channel, 2, 3)]


# -- replies that carry links ---------------------------------------------------------------------

async def test_a_pasted_article_address_is_sent_as_its_counted_short_link(database_url: str) -> None:
    async with running_core(database_url, public_url=PUBLIC) as core:
        conv, channel = await _public_conversation(core)
        agent = await add_agent(core, "kari", online=False)
        article = await helplinks.create_article(core.engine, agent, "Returns", FAQ)
        message_id = await replies.compose(core, conv, agent, f"See {FAQ}. Not {FAQ}/other or https://x.example")
        async with core.engine.connect() as conn:
            text = await conn.scalar(sa.select(msg_t.c.text).where(msg_t.c.id == message_id))
            payload = await conn.scalar(sa.select(out_t.c.payload).where(out_t.c.message_id == message_id))
            link = (await conn.execute(sa.select(link_t).where(link_t.c.article_id == article))).one()
        short = helplinks.short_url(PUBLIC, link.code)
        assert text == f"See {short}. Not {FAQ}/other or https://x.example"
        assert payload["text"] == text
        assert (link.message_id, link.conversation_id, link.channel_id, link.agent_id) == \
            (message_id, conv, channel, agent)


async def test_an_inserted_link_is_marked_sent_by_the_first_reply_only(database_url: str) -> None:
    async with running_core(database_url, public_url=PUBLIC) as core:
        conv, channel = await _public_conversation(core)
        agent = await add_agent(core, "kari", online=False)
        code = await _link(core, conv, channel, agent)
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(link_t.c.message_id).where(link_t.c.code == code)) is None
        first = await replies.compose(core, conv, agent, f"Here: {helplinks.short_url(PUBLIC, code)}")
        await replies.compose(core, conv, agent, f"Again: {helplinks.short_url(PUBLIC, code)}")
        async with core.engine.connect() as conn:
            assert await conn.scalar(sa.select(link_t.c.message_id).where(link_t.c.code == code)) == first


async def test_a_reply_made_too_long_by_its_link_is_refused_and_nothing_is_queued(database_url: str) -> None:
    async with running_core(database_url, public_url=PUBLIC) as core:
        conv, channel = await _public_conversation(core)
        agent = await add_agent(core, "kari", online=False)
        await helplinks.create_article(core.engine, agent, "Returns", FAQ)
        # 500 is the simulator's public limit; the short link is longer than the address pasted.
        text = "x" * (500 - len(FAQ) - 1) + " " + FAQ
        assert len(text) == 500 and len(helplinks.short_url(PUBLIC, "AbCd2345")) == len(FAQ) + 6
        with pytest.raises(replies.ReplyRejected, match="Too long for a Simulated platform public reply: "
                                                        "506 of at most 500 characters"):
            await replies.compose(core, conv, agent, text)
        async with core.engine.connect() as conn:
            outbound = sa.select(sa.func.count()).select_from(msg_t).where(msg_t.c.direction == "out")
            assert await conn.scalar(outbound) == 0
