"""The customer's survey page: no login, one tap on a phone.

The rating buttons submit the form themselves, so one tap records the rating; the two
optional questions and the comment come after, on the thank-you page. The link's token is
the only credential, which is why every state (unknown, expired, answered) is its own page
with its own status code and says nothing about the conversation.
"""

from __future__ import annotations

from aiohttp import web

from socialcrm import csat
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
TEMPLATE = "survey/page.html"


async def _page(request: web.Request, *, step: str, error: str = "", status: int = 200) -> web.Response:
    response = await render(request, TEMPLATE, {"step": step, "error": error, "ratings": csat.RATINGS,
                                                "token": request.match_info["token"],
                                                "comment_max": csat.COMMENT_MAX}, status=status)
    # The token is in the URL: keep it out of Referer headers sent to any linked page.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _step_for(survey: csat.Survey) -> str:
    if survey.state == "answered":
        return "done" if survey.details_given else "details"
    return survey.state          # open | expired


@routes.get("/s/{token}", name="survey")
async def survey_page(request: web.Request) -> web.StreamResponse:
    survey = await csat.find(request.app[CORE].engine, request.match_info["token"])
    if survey is None:
        return await _page(request, step="unknown", status=404)
    step = _step_for(survey)
    return await _page(request, step=step, status=410 if step == "expired" else 200)


@routes.post("/s/{token}")
async def survey_answer(request: web.Request) -> web.StreamResponse:
    engine, token = request.app[CORE].engine, request.match_info["token"]
    form = await request.post()
    try:
        await csat.answer(engine, token, csat.parse_rating(form.get("rating")))
    except csat.SurveyRejected as exc:
        return await _refused(request, exc)
    raise web.HTTPSeeOther(request.path)


@routes.post("/s/{token}/details")
async def survey_details(request: web.Request) -> web.StreamResponse:
    engine, token = request.app[CORE].engine, request.match_info["token"]
    form = await request.post()
    try:
        await csat.add_details(engine, token, csat.parse_yes_no(form.get("first_contact")),
                               csat.parse_yes_no(form.get("self_help")), csat.parse_comment(form.get("comment")))
    except csat.SurveyRejected as exc:
        return await _refused(request, exc)
    raise web.HTTPSeeOther(request.app.router["survey"].url_for(token=token))


async def _refused(request: web.Request, exc: csat.SurveyRejected) -> web.Response:
    steps = {404: "unknown", 409: "done", 410: "expired"}
    if exc.status in steps:
        return await _page(request, step=steps[exc.status], error=str(exc), status=exc.status)
    survey = await csat.find(request.app[CORE].engine, request.match_info["token"])
    step = _step_for(survey) if survey else "unknown"
    return await _page(request, step=step, error=str(exc), status=exc.status)
