"""Help articles (the brand's FAQ pages) and the short, click-counted links we send to them.

A link we send is `<public_url>/l/<code>`, one code per (article, conversation): the code
carries the article, the conversation, its channel and the agent who first used it, so a click
says which answer guided which customer to self-help. The code is random (not a counter), so
codes cannot be walked to inflate or read the counts.

Platforms fetch every link they carry to draw a preview, and crawlers follow links too; those
requests must not count as a customer's click. `PREVIEW_AGENTS` lists the User-Agent markers we
know (Meta, X, Telegram, WhatsApp, Slack, Discord, LinkedIn, Mastodon, Bluesky, Skype, Google,
Bing, Apple); generic "bot/", "crawler" and "spider" catch most others; an empty User-Agent is
not a browser either. Only GET counts (HEAD is what many checkers send).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import audit, models
from socialcrm.db import insert

article_t = models.HelpArticle.__table__
link_t = models.HelpLink.__table__

PREVIEW_AGENTS = (
    "facebookexternalhit", "facebookcatalog", "meta-externalagent", "twitterbot", "telegrambot", "whatsapp",
    "slackbot", "slack-imgproxy", "discordbot", "linkedinbot", "mastodon", "bluesky cardyb", "cardyb",
    "skypeuripreview", "googlebot", "google-inspectiontool", "bingbot", "bingpreview", "applebot", "embedly",
    "iframely", "redditbot", "pinterest", "vkshare", "bot/", "crawler", "spider",
)
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no 0/O, 1/l/I
CODE_LENGTH = 8
CODE = re.compile(r"^[A-Za-z0-9]{4,16}$")
URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+")
TRAILING = ".,;:!?)]}'\""
MAX_TITLE, MAX_URL, MAX_ARTICLES = 200, 2000, 1000


class ArticleRejected(ValueError):
    """The article cannot be saved as given; str() says why in plain words."""


def is_preview_fetcher(user_agent: str | None) -> bool:
    """True for link-preview fetchers and crawlers: their requests are not a customer's click."""
    ua = (user_agent or "").strip().lower()
    return not ua or any(marker in ua for marker in PREVIEW_AGENTS)


def short_url(public_url: str, code: str) -> str:
    return f"{public_url.rstrip('/')}/l/{code}"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


# -- articles -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArticleStats:
    id: int
    title: str
    url: str
    active: bool
    #: Conversations whose replies carried the link.
    sent: int
    clicks: int
    #: Conversations in which the customer followed the link at least once.
    clicked_conversations: int


def check_article(title: str, url: str) -> dict[str, str]:
    title, url = " ".join(title.split()), url.strip()
    if not title:
        raise ArticleRejected("Give the article a title.")
    if len(title) > MAX_TITLE:
        raise ArticleRejected(f"The title is too long: at most {MAX_TITLE} characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise ArticleRejected("The address must be a full http:// or https:// URL without spaces.")
    if len(url) > MAX_URL:
        raise ArticleRejected(f"The address is too long: at most {MAX_URL} characters.")
    return {"title": title, "url": url}


async def create_article(engine: AsyncEngine, actor_id: int, title: str, url: str) -> int:
    values, now = check_article(title, url), models.utcnow()
    async with engine.begin() as conn:
        article_id = (await conn.execute(article_t.insert().values(
            **values, active=True, created_at=now, updated_at=now).returning(article_t.c.id))).scalar_one()
        await audit.record(conn, actor_id, "help_article.create", f"help article {article_id}", None, values)
    return article_id


async def update_article(engine: AsyncEngine, actor_id: int, article_id: int, title: str, url: str,
                         active: bool) -> None:
    values = {**check_article(title, url), "active": active}
    async with engine.begin() as conn:
        before = (await conn.execute(sa.select(article_t.c.title, article_t.c.url, article_t.c.active)
                                     .where(article_t.c.id == article_id))).first()
        if before is None:
            raise LookupError(article_id)
        await conn.execute(article_t.update().where(article_t.c.id == article_id)
                           .values(**values, updated_at=models.utcnow()))
        await audit.record(conn, actor_id, "help_article.update", f"help article {article_id}",
                           dict(before._mapping), values)


async def get_article(conn: AsyncConnection, article_id: int) -> Any:
    return (await conn.execute(sa.select(article_t).where(article_t.c.id == article_id))).first()


async def active_articles(conn: AsyncConnection, query: str = "", limit: int = MAX_ARTICLES) -> list[Any]:
    """Active articles whose title or URL contains every word of `query`, by title; bounded."""
    stmt = sa.select(article_t).where(article_t.c.active.is_(True))
    for word in query.lower().split()[:8]:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(sa.or_(sa.func.lower(article_t.c.title).like(pattern, escape="\\"),
                                 sa.func.lower(article_t.c.url).like(pattern, escape="\\")))
    return list((await conn.execute(stmt.order_by(article_t.c.title, article_t.c.id).limit(limit))).all())


async def article_stats(conn: AsyncConnection, limit: int = MAX_ARTICLES) -> list[ArticleStats]:
    """Every article with its sends and clicks, most clicked first: one grouped query."""
    sent = sa.func.count(link_t.c.message_id)
    clicks = sa.func.coalesce(sa.func.sum(link_t.c.clicks), 0)
    clicked = sa.func.count(sa.case((link_t.c.clicks > 0, link_t.c.id)))
    stmt = (sa.select(article_t.c.id, article_t.c.title, article_t.c.url, article_t.c.active,
                      sent.label("sent"), clicks.label("clicks"), clicked.label("clicked"))
            .select_from(article_t.outerjoin(link_t, link_t.c.article_id == article_t.c.id))
            .group_by(article_t.c.id, article_t.c.title, article_t.c.url, article_t.c.active)
            .order_by(article_t.c.active.desc(), clicks.desc(), article_t.c.title).limit(limit))
    return [ArticleStats(r.id, r.title, r.url, r.active, r.sent, int(r.clicks), r.clicked)
            for r in (await conn.execute(stmt)).all()]


async def clicks_by(conn: AsyncConnection, article_id: int, column: str) -> list[tuple[int | None, int, int]]:
    """One article's (key, links sent, clicks) grouped by "channel_id" or "agent_id"."""
    key = link_t.c[column]
    stmt = (sa.select(key, sa.func.count(link_t.c.message_id), sa.func.coalesce(sa.func.sum(link_t.c.clicks), 0))
            .where(link_t.c.article_id == article_id, link_t.c.message_id.is_not(None))
            .group_by(key).order_by(sa.func.sum(link_t.c.clicks).desc(), key))
    return [(r[0], r[1], int(r[2])) for r in (await conn.execute(stmt)).all()]


# -- links ----------------------------------------------------------------------------------

async def link_code(conn: AsyncConnection, article_id: int, conversation_id: int, channel_id: int,
                    agent_id: int | None) -> str:
    """The conversation's code for the article, created on first use (safe when two agents race)."""
    for _ in range(5):
        await conn.execute(insert(conn, link_t).values(
            code=new_code(), article_id=article_id, conversation_id=conversation_id, channel_id=channel_id,
            agent_id=agent_id, clicks=0, created_at=models.utcnow()).on_conflict_do_nothing())
        code = await conn.scalar(sa.select(link_t.c.code).where(
            link_t.c.article_id == article_id, link_t.c.conversation_id == conversation_id))
        if code is not None:
            return code
    raise RuntimeError("could not draw a free short-link code in 5 tries")   # 55^8 codes: never in practice


async def links_for(engine: AsyncEngine, public_url: str, article_ids: list[int], conversation_id: int,
                    channel_id: int, agent_id: int | None) -> dict[int, str]:
    """The short URLs of those articles that exist and are active, for one conversation."""
    if not article_ids:
        return {}
    async with engine.begin() as conn:
        active = (await conn.scalars(sa.select(article_t.c.id).where(
            article_t.c.id.in_(article_ids), article_t.c.active.is_(True)))).all()
        return {a: short_url(public_url, await link_code(conn, a, conversation_id, channel_id, agent_id))
                for a in active}


async def shorten_article_urls(engine: AsyncEngine, public_url: str, text: str, conversation_id: int,
                               channel_id: int, agent_id: int | None) -> str:
    """A help article's own address pasted into a reply becomes its counted short link."""
    found = {m.group(0).rstrip(TRAILING) for m in URL_IN_TEXT.finditer(text)}
    if not found:
        return text
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(article_t.c.id, article_t.c.url).where(
            article_t.c.url.in_(sorted(found)), article_t.c.active.is_(True)))).all()
    if not rows:
        return text
    by_url = {r.url: r.id for r in rows}
    links = await links_for(engine, public_url, list(by_url.values()), conversation_id, channel_id, agent_id)

    def swap(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(TRAILING)
        tail = match.group(0)[len(url):]
        return links[by_url[url]] + tail if url in by_url and by_url[url] in links else match.group(0)

    return URL_IN_TEXT.sub(swap, text)


def codes_in(public_url: str, text: str) -> list[str]:
    prefix = re.escape(public_url.rstrip("/") + "/l/")
    return list(dict.fromkeys(re.findall(prefix + r"([A-Za-z0-9]{4,16})", text)))


async def mark_sent(conn: AsyncConnection, public_url: str, conversation_id: int, message_id: int, text: str) -> None:
    """Record the first reply that carried each of this conversation's links (on the caller's transaction)."""
    codes = codes_in(public_url, text)
    if codes:
        await conn.execute(link_t.update().where(
            link_t.c.code.in_(codes), link_t.c.conversation_id == conversation_id, link_t.c.message_id.is_(None),
        ).values(message_id=message_id))


async def follow(engine: AsyncEngine, code: str, *, count: bool, now: datetime) -> str | None:
    """The article's address for a code (None if unknown); counts the click when `count`."""
    if not CODE.match(code):
        return None
    async with engine.begin() as conn:
        row = (await conn.execute(sa.select(link_t.c.id, article_t.c.url)
                                  .join(article_t, article_t.c.id == link_t.c.article_id)
                                  .where(link_t.c.code == code))).first()
        if row is None:
            return None
        if count:
            await conn.execute(link_t.update().where(link_t.c.id == row.id).values(
                clicks=link_t.c.clicks + 1, last_click_at=now,
                first_click_at=sa.func.coalesce(link_t.c.first_click_at, sa.literal(now, models.UTCDateTime()))))
    return row.url
