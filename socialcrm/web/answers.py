"""Standard answers and help articles: the pages that manage them, the composer's picker, and
the public short-link redirect.

Agents manage their personal answers; team answers and help articles are for leads and admins
(checked here on the server, not only hidden in the page). The picker asks two JSON endpoints:
a search (GET, no side effects) and an insert (POST, CSRF-checked) that fills the placeholders
and creates the conversation's help-link codes, so nothing is written while an agent browses.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from socialcrm import answers, helplinks, models
from socialcrm import inbox as queries
from socialcrm.answers import AnswerRejected, Draft
from socialcrm.helplinks import ArticleRejected
from socialcrm.users import Viewer
from socialcrm.web.auth import current_viewer, require_role, viewer_of
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
MANAGERS = ("lead", "admin")
NOT_FOUND = "There is no such standard answer, or it is not yours to see."
NO_CONVERSATION = "There is no such conversation, or it belongs to a team you are not in."
UNKNOWN_LINK = "This link is unknown. It may have been mistyped."


# -- managing answers -------------------------------------------------------------------------

async def _list_page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    viewer, query = viewer_of(request), request.query.get("q", "")[:200]
    async with request.app[CORE].engine.connect() as conn:
        found = await answers.search(conn, viewer, query, limit=answers.PAGE_LIMIT)
    rows = [(a, answers.may_edit(viewer, a)) for a in found]
    return await render(request, "answers/list.html", {"rows": rows, "q": query, "error": error,
                                                       "limit": answers.PAGE_LIMIT}, status=status)


@routes.get("/answers", name="answers")
async def answer_list(request: web.Request) -> web.StreamResponse:
    return await _list_page(request)


async def _form_page(request: web.Request, viewer: Viewer, *, answer_id: int | None, draft: Draft,
                     error: str = "", status: int = 200) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        teams = await answers.team_choices(conn, viewer)
        articles = await helplinks.active_articles(conn, limit=200)
    context = {"answer_id": answer_id, "draft": draft, "teams": teams, "articles": articles, "error": error,
               "placeholders": answers.KNOWN}
    return await render(request, "answers/form.html", context, status=status)


def _draft(form: Any) -> Draft:
    return Draft(title=str(form.get("title", "")), body=str(form.get("body", "")), tags=str(form.get("tags", "")),
                 language=str(form.get("language", "")), scope=str(form.get("scope", "personal")))


@routes.get("/answers/new", name="answer_new")
async def answer_new(request: web.Request) -> web.StreamResponse:
    return await _form_page(request, viewer_of(request), answer_id=None, draft=Draft("", ""))


@routes.post("/answers/new")
async def answer_create(request: web.Request) -> web.StreamResponse:
    viewer, draft = viewer_of(request), _draft(await request.post())
    try:
        await answers.create(request.app[CORE].engine, viewer, draft)
    except AnswerRejected as exc:
        return await _form_page(request, viewer, answer_id=None, draft=draft, error=str(exc), status=422)
    raise web.HTTPSeeOther("/answers")


async def _editable(request: web.Request) -> tuple[Viewer, answers.Answer]:
    viewer, answer_id = viewer_of(request), int(request.match_info["id"])
    async with request.app[CORE].engine.connect() as conn:
        answer = await answers.get(conn, answer_id)
    if answer is None or not answers.may_see(viewer, answer):
        raise web.HTTPNotFound(text=NOT_FOUND)
    if not answers.may_edit(viewer, answer):
        raise web.HTTPForbidden(text="Only team leads and admins change a team's standard answers.")
    return viewer, answer


@routes.get(r"/answers/{id:\d+}/edit", name="answer_edit")
async def answer_edit(request: web.Request) -> web.StreamResponse:
    viewer, a = await _editable(request)
    draft = Draft(a.title, a.body, ", ".join(a.tags), a.language, "personal" if a.personal else str(a.team_id))
    return await _form_page(request, viewer, answer_id=a.id, draft=draft)


@routes.post(r"/answers/{id:\d+}/edit")
async def answer_update(request: web.Request) -> web.StreamResponse:
    viewer, a = await _editable(request)
    draft = _draft(await request.post())
    try:
        await answers.update(request.app[CORE].engine, viewer, a.id, draft)
    except AnswerRejected as exc:
        return await _form_page(request, viewer, answer_id=a.id, draft=draft, error=str(exc), status=422)
    raise web.HTTPSeeOther("/answers")


@routes.post(r"/answers/{id:\d+}/delete", name="answer_delete")
async def answer_delete(request: web.Request) -> web.StreamResponse:
    viewer, a = await _editable(request)
    await answers.delete(request.app[CORE].engine, viewer, a.id)
    raise web.HTTPSeeOther("/answers")


# -- help articles (leads and admins) -------------------------------------------------------

async def _articles_page(request: web.Request, *, error: str = "", form: dict[str, str] | None = None,
                         status: int = 200) -> web.Response:
    require_role(request, *MANAGERS)
    async with request.app[CORE].engine.connect() as conn:
        stats = await helplinks.article_stats(conn)
    return await render(request, "answers/articles.html", {"stats": stats, "error": error,
                                                           "form": form or {"title": "", "url": ""}}, status=status)


@routes.get("/help-articles", name="help_articles")
async def article_list(request: web.Request) -> web.StreamResponse:
    return await _articles_page(request)


@routes.post("/help-articles")
async def article_create(request: web.Request) -> web.StreamResponse:
    viewer = require_role(request, *MANAGERS)
    form = await request.post()
    title, url = str(form.get("title", "")), str(form.get("url", ""))
    try:
        await helplinks.create_article(request.app[CORE].engine, viewer.id, title, url)
    except ArticleRejected as exc:
        return await _articles_page(request, error=str(exc), form={"title": title, "url": url}, status=422)
    raise web.HTTPSeeOther("/help-articles")


async def _article_form(request: web.Request, article: Any, *, error: str = "", status: int = 200) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        by_channel = await helplinks.clicks_by(conn, article.id, "channel_id")
        by_agent = await helplinks.clicks_by(conn, article.id, "agent_id")
        names = await _names(conn)
    return await render(request, "answers/article.html", {
        "article": article, "error": error, "by_channel": by_channel, "by_agent": by_agent, "names": names,
    }, status=status)


async def _names(conn: Any) -> dict[str, dict[int, str]]:
    """Channel and agent names for the breakdown tables (small tables: read once)."""
    channel_t, user_t = models.Channel.__table__, models.User.__table__
    channels = {r.id: r.name for r in (await conn.execute(sa.select(channel_t.c.id, channel_t.c.name))).all()}
    people = {r.id: r.display_name or r.username for r in (await conn.execute(
        sa.select(user_t.c.id, user_t.c.display_name, user_t.c.username))).all()}
    return {"channel_id": channels, "agent_id": people}


async def _article(request: web.Request) -> Any:
    require_role(request, *MANAGERS)
    async with request.app[CORE].engine.connect() as conn:
        article = await helplinks.get_article(conn, int(request.match_info["id"]))
    if article is None:
        raise web.HTTPNotFound(text="There is no such help article.")
    return article


@routes.get(r"/help-articles/{id:\d+}", name="help_article")
async def article_page(request: web.Request) -> web.StreamResponse:
    return await _article_form(request, await _article(request))


@routes.post(r"/help-articles/{id:\d+}")
async def article_update(request: web.Request) -> web.StreamResponse:
    article, viewer = await _article(request), viewer_of(request)
    form = await request.post()
    title, url, active = str(form.get("title", "")), str(form.get("url", "")), form.get("active") == "1"
    try:
        await helplinks.update_article(request.app[CORE].engine, viewer.id, article.id, title, url, active)
    except ArticleRejected as exc:
        shown = {**article._mapping, "title": title, "url": url, "active": active}
        return await _article_form(request, _Row(shown), error=str(exc), status=422)
    raise web.HTTPSeeOther("/help-articles")


class _Row:
    """Attribute access over a dict, so a rejected edit re-renders with what was typed."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


# -- the composer's picker --------------------------------------------------------------------

async def _conversation(request: web.Request) -> tuple[Viewer, queries.ConversationDetail]:
    viewer = viewer_of(request)
    detail = await queries.conversation_detail(request.app[CORE].engine, viewer, int(request.match_info["id"]))
    if detail is None:
        raise web.HTTPNotFound(text=NO_CONVERSATION)
    return viewer, detail


def _answer_json(a: answers.Answer) -> dict[str, Any]:
    filled = answers.fill(a.body, dict.fromkeys(answers.KNOWN, "x"), lambda _id: "x")
    return {"id": a.id, "title": a.title, "tags": list(a.tags), "language": a.language,
            "scope": "personal" if a.personal else a.team_name, "body": a.body, "unknown": list(filled.unknown)}


@routes.get(r"/conversations/{id:\d+}/answers", name="answer_picker")
async def picker_search(request: web.Request) -> web.StreamResponse:
    """Answers usable in this conversation (the viewer's own and its team's) and help articles."""
    viewer, detail = await _conversation(request)
    query, language = request.query.get("q", "")[:200], request.query.get("lang", "")[:16]
    async with request.app[CORE].engine.connect() as conn:
        found = await answers.search(conn, viewer, query, team_ids=[detail.conversation.team_id], language=language)
        articles = await helplinks.active_articles(conn, query, limit=10)
    return web.json_response({"answers": [_answer_json(a) for a in found],
                              "articles": [{"id": r.id, "title": r.title, "url": r.url} for r in articles]},
                             headers={"Cache-Control": "no-store"})


def _values(detail: queries.ConversationDetail, viewer: Viewer, platform: str) -> dict[str, str]:
    return answers.placeholder_values(customer=detail.identity.name or detail.contact.name or "",
                                      agent=viewer.name, channel=detail.channel.name, platform=platform)


async def _inserted(request: web.Request, detail: queries.ConversationDetail, filled: answers.Filled) -> web.Response:
    """The text to insert, what is left for the agent to fill, and its length as the platform counts."""
    channel = await request.app[CORE].channels.get(detail.conversation.channel_id)
    public = bool(detail.conversation.public)
    length = channel.connector.text_length(filled.text, public) if channel else len(filled.text)
    limit = channel.connector.capabilities.max_length(public) if channel else None
    return web.json_response({"text": filled.text, "unknown": list(filled.unknown), "missing": list(filled.missing),
                              "length": length, "limit": limit}, headers={"Cache-Control": "no-store"})


@routes.post(r"/conversations/{id:\d+}/answers/{aid:\d+}/insert", name="answer_insert")
async def picker_insert(request: web.Request) -> web.StreamResponse:
    viewer, detail = await _conversation(request)
    conv, core = detail.conversation, request.app[CORE]
    async with core.engine.connect() as conn:
        answer = await answers.get(conn, int(request.match_info["aid"]))
    if answer is None or not (answer.owner_id == viewer.id or answer.team_id == conv.team_id):
        raise web.HTTPNotFound(text=NOT_FOUND)
    links = await helplinks.links_for(core.engine, core.settings.public_url, answers.help_ids(answer.body),
                                      conv.id, conv.channel_id, viewer.id)
    channel = await core.channels.get(conv.channel_id)
    platform = channel.connector.display_name if channel else ""
    return await _inserted(request, detail, answers.fill(answer.body, _values(detail, viewer, platform), links.get))


@routes.post(r"/conversations/{id:\d+}/help/{aid:\d+}/insert", name="article_insert")
async def picker_insert_article(request: web.Request) -> web.StreamResponse:
    viewer, detail = await _conversation(request)
    conv, core, article_id = detail.conversation, request.app[CORE], int(request.match_info["aid"])
    links = await helplinks.links_for(core.engine, core.settings.public_url, [article_id], conv.id,
                                      conv.channel_id, viewer.id)
    if article_id not in links:
        raise web.HTTPNotFound(text="There is no such help article, or it has been archived.")
    return await _inserted(request, detail, answers.Filled(links[article_id], articles=(article_id,)))


async def composer_context(request: web.Request, composer: Any) -> dict[str, Any]:
    """For the reply box: the characters left for the agent once the channel's signature is added."""
    budget = composer.max_length
    if budget is not None and composer.signature:
        channel = await request.app[CORE].channels.get(int(request.match_info["id"]))
        if channel is not None:
            budget -= channel.connector.text_length("\n" + composer.signature, composer.public)
    return {"reply_budget": budget}


# -- the public redirect ---------------------------------------------------------------------

@routes.get("/l/{code}", name="help_link")
async def follow_link(request: web.Request) -> web.StreamResponse:
    """302 to the article. Counted only for a GET by something that looks like a customer's
    browser: not a link-preview fetcher or crawler, not one of our own signed-in staff."""
    counts = (request.method == "GET" and not helplinks.is_preview_fetcher(request.headers.get("User-Agent"))
              and await current_viewer(request) is None)
    url = await helplinks.follow(request.app[CORE].engine, request.match_info["code"], count=counts,
                                 now=models.utcnow())
    if url is None:
        raise web.HTTPNotFound(text=UNKNOWN_LINK)
    raise web.HTTPFound(url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
