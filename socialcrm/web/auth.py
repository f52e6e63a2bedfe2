"""Sign-in, sign-out, password change, and who is asking on each request.

The session lives in an encrypted cookie (aiohttp-session + Fernet). It carries the user id and
the user's `session_epoch` at sign-in; the middleware reloads the user on every request and drops
the session when the account is disabled or the epoch has moved on (password changed elsewhere).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_session import get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from socialcrm import throttle, users, vault
from socialcrm.config import Settings
from socialcrm.users import Viewer
from socialcrm.web.csrf import SESSION_KEY as CSRF_SESSION_KEY
from socialcrm.web.keys import CORE, VIEWER
from socialcrm.web.render import render

COOKIE_NAME = "socialcrm_session"
SESSION_MAX_AGE = 14 * 24 * 3600
PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz", "/metrics"})  # /metrics checks its own token
PUBLIC_PREFIXES = ("/static/", "/webhooks/", "/s/", "/l/")   # /l/: help-article short links
LOGIN_FAILED = "Wrong username or password."
#: The login throttle (policy and clock); tests put one with a fixed clock here.
LOGIN_THROTTLE = web.AppKey("login_throttle", throttle.Throttle)
DEFAULT_THROTTLE = throttle.Throttle()

routes = web.RouteTableDef()


def cookie_fernet(settings: Settings) -> Fernet:
    """The cookie cipher, derived from the master key so it never equals the at-rest key."""
    master = vault.load_or_create_key(settings)
    derived = hmac.new(master, b"socialcrm session cookies v1", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def session_setup(settings: Settings) -> web.Middleware:
    storage = EncryptedCookieStorage(
        cookie_fernet(settings), cookie_name=COOKIE_NAME, max_age=SESSION_MAX_AGE,
        httponly=True, samesite="Lax", secure=settings.secure_cookies, path="/",
    )
    return session_middleware(storage)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(target: str | None) -> str:
    """Only local paths, so the login form cannot be used as an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def current_viewer(request: web.Request) -> Viewer | None:
    """The signed-in user, or None; a stale or disabled session is cleared on the way."""
    session = await get_session(request)
    user_id = session.get("uid")
    if user_id is None:
        return None
    found = await users.load_viewer(request.app[CORE].engine, user_id)
    if found is None or not found[1] or found[0].session_epoch != session.get("epoch"):
        session.pop("uid", None)
        session.pop("epoch", None)
        return None
    return found[0]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PUBLIC_PREFIXES):
        request[VIEWER] = None
        return await handler(request)
    request[VIEWER] = await current_viewer(request)
    if request[VIEWER] is None and not is_public(request.path):
        if request.headers.get("HX-Request") or request.path == "/events":
            raise web.HTTPUnauthorized(text="Your session has ended. Sign in again.",
                                       headers={"HX-Redirect": "/login"})
        location = request.app.router["login"].url_for().with_query(next=request.path_qs)
        raise web.HTTPFound(location)
    return await handler(request)


def viewer_of(request: web.Request) -> Viewer:
    """The signed-in user of a handler behind the login wall."""
    viewer = request.get(VIEWER)
    if viewer is None:
        raise web.HTTPUnauthorized(text="Sign in first.")
    return viewer


def require_role(request: web.Request, *roles: str) -> Viewer:
    """The viewer, if their role is one of `roles`; else 403."""
    viewer = viewer_of(request)
    if viewer.role not in roles:
        raise web.HTTPForbidden(text=f"This page is for {' or '.join(roles)} accounts.")
    return viewer


# -- pages ----------------------------------------------------------------------------------

@routes.get("/login", name="login")
async def login_form(request: web.Request) -> web.StreamResponse:
    if request[VIEWER] is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return await render(request, "login.html", {"next": safe_next(request.query.get("next")), "username": ""})


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    engine, limiter = request.app[CORE].engine, request.app.get(LOGIN_THROTTLE, DEFAULT_THROTTLE)
    if wait := await limiter.wait(engine, username):
        return await _locked(request, target, username, wait)
    user = await users.authenticate(engine, username, password)
    if user is None:
        if wait := await limiter.failed(engine, username):
            return await _locked(request, target, username, wait)
        context = {"next": target, "username": username, "error": LOGIN_FAILED}
        return await render(request, "login.html", context, status=401)
    await limiter.succeeded(engine, username)
    await _start_session(request, user.id, user.session_epoch)
    raise web.HTTPSeeOther(target)


async def _locked(request: web.Request, target: str, username: str, seconds: int) -> web.Response:
    """429 with Retry-After, worded the same whether or not the username exists."""
    error = f"Too many failed sign-ins for this username. Try again in {throttle.in_words(seconds)}."
    context = {"next": target, "username": username, "error": error}
    response = await render(request, "login.html", context, status=429)
    response.headers["Retry-After"] = str(seconds)
    return response


async def _start_session(request: web.Request, user_id: int, epoch: int) -> None:
    """A fresh session (new CSRF token) so nothing from before sign-in carries over."""
    session = await new_session(request)
    session["uid"] = user_id
    session["epoch"] = epoch


@routes.post("/logout", name="logout")
async def logout(request: web.Request) -> web.StreamResponse:
    (await get_session(request)).invalidate()
    raise web.HTTPSeeOther(request.app.router["login"].url_for())


@routes.get("/account/password", name="password")
async def password_form(request: web.Request) -> web.StreamResponse:
    viewer_of(request)
    return await render(request, "account/password.html", {})


@routes.post("/account/password")
async def password_change(request: web.Request) -> web.StreamResponse:
    viewer = viewer_of(request)
    form = await request.post()
    new, repeat = str(form.get("new_password", "")), str(form.get("repeat_password", ""))
    try:
        if new != repeat:
            raise users.PasswordRejected("The two new passwords are not the same.")
        epoch = await users.change_password(request.app[CORE].engine, viewer.id,
                                            str(form.get("current_password", "")), new)
    except users.PasswordRejected as exc:
        return await render(request, "account/password.html", {"error": str(exc)}, status=422)
    session = await get_session(request)
    session["epoch"] = epoch
    session[CSRF_SESSION_KEY] = ""   # a new token for the new credentials
    return await render(request, "account/password.html", {"done": True})


@routes.get("/healthz", name="healthz")
async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})
