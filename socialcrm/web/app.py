"""The aiohttp application factory: nothing happens at import time.

`create_app(settings)` wires templates, static files, sessions, CSRF, login and every area's
routes; a cleanup context creates and starts the Core (engine, hub, scheduler, outbox) unless a
started one is handed in (tests, the CLI's `demo`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

import socialcrm
from socialcrm.config import Settings
from socialcrm.logs import request_id_middleware
from socialcrm.web import answers as answer_pages
from socialcrm.web import contacts, search as search_pages
from socialcrm.web import (
    admin_channels,
    admin_users,
    auth,
    collab,
    conversation,
    dashboard,
    inbox,
    live,
    ops,
    satisfaction,
    sla_settings,
    survey,
)
from socialcrm.web.csrf import csrf_middleware
from socialcrm.web.keys import CORE, OWNS_CORE, SETTINGS, STREAMS
from socialcrm.web.middleware import error_middleware, security_headers
from socialcrm.web.render import setup_templates

if TYPE_CHECKING:
    from socialcrm.core import Core


def asset_folder(name: str) -> Path:
    """`templates` or `static`: inside the installed package, else at the top of the checkout."""
    package = Path(socialcrm.__file__).parent
    for candidate in (package / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"cannot find the {name}/ folder next to {package}")


def create_app(settings: Settings, core: Core | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.webhook_max_bytes,
        middlewares=[request_id_middleware, auth.session_setup(settings), error_middleware, csrf_middleware,
                     auth.auth_middleware, admin_channels.warnings_middleware],
    )
    app[SETTINGS] = settings
    app[STREAMS] = set()
    app[OWNS_CORE] = core is None
    if core is not None:
        app[CORE] = core
    app.cleanup_ctx.append(_core_context)
    app.on_shutdown.append(live.close_streams)
    app.on_response_prepare.append(security_headers)
    setup_templates(app, asset_folder("templates"))
    _add_routes(app)
    return app


def _add_routes(app: web.Application) -> None:
    app.router.add_routes(auth.routes)
    app.router.add_routes(answer_pages.routes)
    app.router.add_routes(inbox.routes)
    app.router.add_routes(search_pages.routes)
    app.router.add_routes(contacts.routes)
    app.router.add_routes(conversation.routes)
    app.router.add_routes(collab.routes)
    app.router.add_routes(live.routes)
    app.router.add_routes(ops.routes)
    app.router.add_routes(admin_channels.routes)
    app.router.add_routes(admin_users.routes)
    app.router.add_routes(dashboard.routes)
    app.router.add_routes(satisfaction.routes)
    app.router.add_routes(survey.routes)
    app.router.add_routes(sla_settings.routes)
    app.router.add_static("/static/", asset_folder("static"), name="static")
    _webhook_routes(app)


def _webhook_routes(app: web.Application) -> None:
    try:
        from socialcrm.web import webhooks
    except ImportError as exc:
        if exc.name != "socialcrm.web.webhooks":
            raise
        raise ImportError("socialcrm/web/webhooks.py is missing: it provides setup_routes(app) "
                          "for /webhooks/{connector}") from exc
    webhooks.setup_routes(app)


async def _core_context(app: web.Application) -> AsyncIterator[None]:
    """Create and start the Core when the app owns it; stop it on the way out."""
    if not app[OWNS_CORE]:
        yield
        return
    from socialcrm.core import Core

    core = Core.create(app[SETTINGS])
    await core.start()
    app[CORE] = core
    try:
        yield
    finally:
        await core.stop()
