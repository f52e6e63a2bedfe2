"""Template rendering: the Jinja environment, its filters, and the context every page gets.

Autoescape is on for .html, so anything a customer wrote is escaped; no filter here returns
Markup, and templates never use `|safe` on data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from socialcrm.web.csrf import csrf_token
from socialcrm.web.keys import VIEWER


def setup_templates(app: web.Application, folder: Path) -> None:
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["html"]), enable_async=True,
    )
    env.filters.update(duration=duration, countdown=countdown, when=when, isotime=isotime, web_url=web_url)


async def render(request: web.Request, template: str | list[str], context: dict[str, Any],
                 status: int = 200) -> web.Response:
    """Render with the viewer and a CSRF token in the context."""
    full = {"viewer": request.get(VIEWER), "csrf_token": await csrf_token(request),
            "path": request.path, "path_qs": request.path_qs, **context}
    response = await aiohttp_jinja2.render_template_async(template, request, full, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def duration(delta: timedelta | None) -> str:
    """'45 s', '12 min', '3 h 5 min', '2 d 4 h': how long someone has been waiting."""
    if delta is None:
        return "—"
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def countdown(delta: timedelta | None) -> str:
    """SLA time left in words: '12 min left' or 'overdue 5 min'."""
    if delta is None:
        return "no SLA"
    if delta.total_seconds() < 0:
        return f"overdue {duration(delta)}"
    return f"{duration(delta)} left"


def when(value: datetime | None) -> str:
    """A timestamp as agents read it, in UTC (the page says so)."""
    if value is None:
        return ""
    value = value.astimezone(UTC)
    return value.strftime("%d %b %H:%M UTC")


def isotime(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def web_url(value: str | None) -> str:
    """The URL if it is http(s), else '': a customer's attachment must never be a javascript: link."""
    if not value:
        return ""
    return value if value.lower().startswith(("https://", "http://")) else ""
