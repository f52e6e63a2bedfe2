"""Admin pages for people: users, teams, and the audit log. Admins only; everyone else gets 403.

Handlers parse the form, call one function of `socialcrm.users` (which writes the audit entry in
the same transaction) and redirect. The two exceptions render instead of redirecting: creating a
user and resetting a password show the generated password once, on that response only (no-store),
because a redirect would need the password kept somewhere to show it again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from socialcrm import audit, users
from socialcrm.users import Viewer
from socialcrm.web.auth import require_role
from socialcrm.web.keys import CORE
from socialcrm.web.render import render

routes = web.RouteTableDef()
NO_SUCH_USER = "There is no such user."


def _admin(request: web.Request) -> Viewer:
    return require_role(request, "admin")


def _int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _changes(form: MultiMapping[Any]) -> users.AccountChanges:
    capacity = _int(form.get("capacity"))
    if capacity is None:
        raise users.UserRejected("The capacity must be a whole number.")
    team_ids = frozenset(i for i in (_int(v) for v in form.getall("team", [])) if i is not None)
    return users.AccountChanges(display_name=str(form.get("display_name", "")).strip(),
                                role=str(form.get("role", "")), capacity=capacity, team_ids=team_ids)


# -- users ----------------------------------------------------------------------------------

async def _users_page(request: web.Request, *, error: str = "", status: int = 200,
                      form: dict[str, Any] | None = None) -> web.Response:
    engine = request.app[CORE].engine
    context = {"accounts": await users.accounts(engine), "teams": await users.teams(engine),
               "roles": users.ROLES, "error": error, "form": form or {}}
    return await render(request, "admin/users.html", context, status=status)


@routes.get("/admin/users", name="admin_users")
async def users_page(request: web.Request) -> web.StreamResponse:
    _admin(request)
    return await _users_page(request)


@routes.post("/admin/users")
async def create_user(request: web.Request) -> web.StreamResponse:
    """Create an account; the generated password is on this response and nowhere else."""
    viewer, form = _admin(request), await request.post()
    username = str(form.get("username", "")).strip()
    try:
        changes = _changes(form)
        user_id, password = await users.admin_create(
            request.app[CORE].engine, viewer.id, username, changes.role, changes.display_name,
            changes.capacity, changes.team_ids)
    except users.UserRejected as exc:
        kept = {"username": username, "display_name": form.get("display_name", ""), "role": form.get("role", "")}
        return await _users_page(request, error=str(exc), status=422, form=kept)
    return await _user_page(request, user_id, new_password=password, created=True)


async def _user_page(request: web.Request, user_id: int, *, new_password: str = "", created: bool = False,
                     error: str = "", status: int = 200) -> web.Response:
    engine = request.app[CORE].engine
    account = await users.account(engine, user_id)
    if account is None:
        raise web.HTTPNotFound(text=NO_SUCH_USER)
    context = {"account": account, "teams": await users.teams(engine), "roles": users.ROLES,
               "new_password": new_password, "created": created, "error": error,
               "saved": request.query.get("saved") == "1"}
    return await render(request, "admin/user.html", context, status=status)


@routes.get(r"/admin/users/{id:\d+}", name="admin_user")
async def user_page(request: web.Request) -> web.StreamResponse:
    _admin(request)
    return await _user_page(request, int(request.match_info["id"]))


def _back(request: web.Request, user_id: int) -> web.HTTPSeeOther:
    url = request.app.router["admin_user"].url_for(id=str(user_id)).with_query(saved="1")
    return web.HTTPSeeOther(url)


@routes.post(r"/admin/users/{id:\d+}")
async def edit_user(request: web.Request) -> web.StreamResponse:
    viewer, form, user_id = _admin(request), await request.post(), int(request.match_info["id"])
    try:
        await users.admin_update(request.app[CORE].engine, viewer.id, user_id, _changes(form))
    except users.UserRejected as exc:
        return await _user_page(request, user_id, error=str(exc), status=422)
    raise _back(request, user_id)


@routes.post(r"/admin/users/{id:\d+}/active", name="admin_user_active")
async def set_active(request: web.Request) -> web.StreamResponse:
    """Disable (their sessions end at once) or enable again."""
    viewer, form, user_id = _admin(request), await request.post(), int(request.match_info["id"])
    try:
        await users.admin_set_active(request.app[CORE].engine, viewer.id, user_id, form.get("active") == "1")
    except users.UserRejected as exc:
        return await _user_page(request, user_id, error=str(exc), status=422)
    raise _back(request, user_id)


@routes.post(r"/admin/users/{id:\d+}/password", name="admin_user_password")
async def reset_password(request: web.Request) -> web.StreamResponse:
    """A new password, shown once on this response; their sessions end."""
    viewer, user_id = _admin(request), int(request.match_info["id"])
    try:
        password = await users.admin_reset_password(request.app[CORE].engine, viewer.id, user_id)
    except users.UserRejected as exc:
        return await _user_page(request, user_id, error=str(exc), status=422)
    return await _user_page(request, user_id, new_password=password)


# -- teams ----------------------------------------------------------------------------------

async def _teams_page(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    context = {"teams": await users.teams(request.app[CORE].engine), "error": error}
    return await render(request, "admin/teams.html", context, status=status)


@routes.get("/admin/teams", name="admin_teams")
async def teams_page(request: web.Request) -> web.StreamResponse:
    _admin(request)
    return await _teams_page(request)


@routes.post("/admin/teams")
async def create_team(request: web.Request) -> web.StreamResponse:
    viewer, form = _admin(request), await request.post()
    try:
        await users.admin_create_team(request.app[CORE].engine, viewer.id, str(form.get("name", "")))
    except users.UserRejected as exc:
        return await _teams_page(request, error=str(exc), status=422)
    raise web.HTTPSeeOther(request.app.router["admin_teams"].url_for())


# -- audit ----------------------------------------------------------------------------------

def _since(value: str) -> datetime | None:
    """A YYYY-MM-DD date from the filter form, read as midnight UTC; anything else is no filter."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


@routes.get("/admin/audit", name="admin_audit")
async def audit_page(request: web.Request) -> web.StreamResponse:
    """Who did what, when, before → after; filtered by actor, action and a start date."""
    _admin(request)
    engine, query = request.app[CORE].engine, request.query
    actor, action, since = _int(query.get("actor")), query.get("action", "").strip(), query.get("since", "")
    found = await audit.entries(engine, actor=actor, action=action or None, since=_since(since))
    context = {"entries": found, "accounts": await users.accounts(engine), "actions": await audit.actions(engine),
               "actor": actor, "action": action, "since": since}
    return await render(request, "admin/audit.html", context)
