"""Admin pages for users, teams and the audit log: access, one-time passwords, revocation, audit."""

from __future__ import annotations

import html as htmllib
import re

import pytest
import sqlalchemy as sa

from socialcrm import audit, models, users
from tests.web.conftest import PASSWORD, Browser

NEW_PASSWORD = re.compile(r'<code class="new-password">([^<]+)</code>')
user_t = models.User.__table__


@pytest.fixture
async def admin_id(world) -> int:
    return (await users.create_user(world.core.engine, "boss", PASSWORD, "admin", "Bo Boss")).id


@pytest.fixture
async def admin(signed_in, admin_id) -> Browser:
    return await signed_in("boss")


async def _team_id(core, name: str) -> int:
    t = models.Team.__table__
    async with core.engine.connect() as conn:
        return await conn.scalar(sa.select(t.c.id).where(t.c.name == name))


async def _create(admin: Browser, username: str, **fields: str) -> tuple[int, str, str]:
    """Create through the form; the new id, the page, and the password it showed."""
    await admin.get("/admin/users")
    resp, page = await admin.post("/admin/users", {"username": username, "display_name": "", "role": "agent",
                                                   "capacity": "5", **fields})
    assert resp.status == 200, page
    user_id = int(re.search(r'action="/admin/users/(\d+)"', page).group(1))
    return user_id, page, NEW_PASSWORD.search(page).group(1)


@pytest.mark.parametrize("who", ["agent", "lead"])
async def test_admin_pages_are_for_admins_only(signed_in, world, who) -> None:
    b = await signed_in(who)
    for path in ("/admin/users", "/admin/teams", "/admin/audit", f"/admin/users/{world.agent_id}"):
        resp, _ = await b.get(path)
        assert resp.status == 403, path
    resp, _ = await b.post("/admin/users", {"username": "sneaky", "role": "admin", "capacity": "5"})
    assert resp.status == 403
    resp, _ = await b.post(f"/admin/users/{world.outsider_id}/active", {"active": "0"})
    assert resp.status == 403
    assert all(a.username != "sneaky" for a in await users.accounts(world.core.engine))
    assert (await users.account(world.core.engine, world.outsider_id)).active


async def test_the_user_list_shows_each_account(admin, world) -> None:
    resp, page = await admin.get("/admin/users")
    assert resp.status == 200
    row = re.search(rf'<a href="/admin/users/{world.agent_id}">agent</a>.*?</tr>', page, re.DOTALL).group(0)
    assert "Kari Agent" in row and "Care" in row and "offline" in row and "<td>5</td>" in row


async def test_create_shows_the_password_once(admin, browser, world) -> None:
    user_id, page, password = await _create(admin, "nina", display_name="Nina <b>N</b>",
                                            team=str(await _team_id(world.core, "Care")))
    assert "shown only this once" in page and "Nina &lt;b&gt;N&lt;/b&gt;" in page
    for path in (f"/admin/users/{user_id}", "/admin/users", "/admin/audit"):
        _, again = await admin.get(path)
        assert password not in again, path
    async with world.core.engine.connect() as conn:
        stored = await conn.scalar(sa.select(user_t.c.password_hash).where(user_t.c.id == user_id))
    assert stored.startswith("$argon2id$") and password not in stored
    assert (await browser().login("nina", password)).status == 303
    [entry] = await audit.entries(world.core.engine, action="user.create")
    assert entry.target == "nina" and entry.before is None
    assert entry.after["teams"] == ["Care"] and password not in str(entry.after)


async def test_create_refuses_a_taken_username(admin, world) -> None:
    await admin.get("/admin/users")
    resp, page = await admin.post("/admin/users", {"username": "AGENT", "role": "agent", "capacity": "5"})
    assert resp.status == 422 and "That username is taken." in page
    assert NEW_PASSWORD.search(page) is None


async def test_disabling_ends_the_users_session_at_once(admin, signed_in, browser, world, admin_id) -> None:
    agent = await signed_in("agent")
    resp, _ = await admin.post(f"/admin/users/{world.agent_id}/active", {"active": "0"})
    assert resp.status == 303
    resp, _ = await agent.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    assert (await browser().login("agent")).status == 401
    [entry] = await audit.entries(world.core.engine, action="user.disable")
    assert (entry.actor_id, entry.target, entry.before, entry.after) == (
        admin_id, "agent", {"active": True}, {"active": False})
    await admin.post(f"/admin/users/{world.agent_id}/active", {"active": "1"})
    assert (await browser().login("agent")).status == 303


async def test_an_admin_cannot_disable_themselves(admin, admin_id) -> None:
    resp, page = await admin.post(f"/admin/users/{admin_id}/active", {"active": "0"})
    assert resp.status == 422 and "cannot disable your own account" in page
    resp, _ = await admin.get("/admin/users")
    assert resp.status == 200


async def test_role_capacity_and_teams_are_audited_with_before_and_after(admin, world) -> None:
    care, other = await _team_id(world.core, "Care"), await _team_id(world.core, "Other")
    await admin.get(f"/admin/users/{world.agent_id}")
    resp = await admin.session.post(f"/admin/users/{world.agent_id}", allow_redirects=False, data=[
        ("csrf_token", admin.csrf), ("display_name", "Kari Agent"), ("role", "lead"), ("capacity", "7"),
        ("team", str(care)), ("team", str(other))])
    assert resp.status == 303
    account = await users.account(world.core.engine, world.agent_id)
    assert (account.role, account.capacity, account.teams) == ("lead", 7, ("Care", "Other"))
    by_action = {e.action: e for e in await audit.entries(world.core.engine)}
    assert (by_action["user.role"].before, by_action["user.role"].after) == ({"role": "agent"}, {"role": "lead"})
    assert (by_action["user.update"].before, by_action["user.update"].after) == ({"capacity": 5}, {"capacity": 7})
    add = by_action["team.member.add"]
    assert add.target == "agent in Other"
    assert (add.before, add.after) == ({"teams": ["Care"]}, {"teams": ["Care", "Other"]})
    assert "team.member.remove" not in by_action


async def test_removing_a_team_is_audited(admin, world) -> None:
    await admin.get(f"/admin/users/{world.agent_id}")
    resp, _ = await admin.post(f"/admin/users/{world.agent_id}",
                               {"display_name": "Kari Agent", "role": "agent", "capacity": "5"})
    assert resp.status == 303
    [entry] = await audit.entries(world.core.engine, action="team.member")
    assert (entry.action, entry.before, entry.after) == ("team.member.remove", {"teams": ["Care"]}, {"teams": []})


async def test_admin_password_reset_shows_it_once_and_ends_sessions(admin, signed_in, browser, world) -> None:
    agent = await signed_in("agent")
    resp, page = await admin.post(f"/admin/users/{world.agent_id}/password")
    assert resp.status == 200
    password = NEW_PASSWORD.search(page).group(1)
    _, again = await admin.get(f"/admin/users/{world.agent_id}")
    assert password not in again and NEW_PASSWORD.search(again) is None
    resp, _ = await agent.get("/", allow_redirects=False)
    assert resp.status == 302
    assert (await browser().login("agent")).status == 401
    assert (await browser().login("agent", password)).status == 303
    [entry] = await audit.entries(world.core.engine, action="password.reset")
    assert entry.target == "agent" and password not in str(entry.after)


async def test_teams_page_creates_and_lists(admin, world) -> None:
    await admin.get("/admin/teams")
    resp, _ = await admin.post("/admin/teams", {"name": "Billing"})
    assert resp.status == 303
    _, page = await admin.get("/admin/teams")
    assert "<td>Billing</td><td>no members</td>" in page
    assert re.search(r"<td>Care</td><td>agent</td>", page)
    resp, page = await admin.post("/admin/teams", {"name": "billing"})
    assert resp.status == 422 and "already a team" in page
    assert [e.target for e in await audit.entries(world.core.engine, action="team.create")] == ["Billing"]


async def test_audit_page_filters_by_actor_and_action(admin, signed_in, world, admin_id) -> None:
    other_admin = (await users.create_user(world.core.engine, "deputy", PASSWORD, "admin")).id
    deputy = await signed_in("deputy")
    await admin.post("/admin/teams", {"name": "Billing"})
    await deputy.post(f"/admin/users/{world.outsider_id}/active", {"active": "0"})
    await admin.get(f"/admin/users/{world.agent_id}")
    await admin.post(f"/admin/users/{world.agent_id}", {"display_name": "K", "role": "lead", "capacity": "5",
                                                        "team": str(await _team_id(world.core, "Care"))})

    _, page = await admin.get(f"/admin/audit?actor={other_admin}")
    rows = _rows(page)
    assert [r[1:4] for r in rows] == [["deputy", "user.disable", "outsider"]]
    assert "active: True" in rows[0][4] and "active: False" in rows[0][5]
    _, page = await admin.get("/admin/audit?action=user")
    assert {r[2] for r in _rows(page)} == {"user.role", "user.update", "user.disable"}
    _, page = await admin.get(f"/admin/audit?actor={admin_id}&action=team")
    assert [r[1:4] for r in _rows(page)] == [["boss", "team.create", "Billing"]]
    _, page = await admin.get("/admin/audit?action=nothing.like.this")
    assert _rows(page) == [] and "Nothing recorded that matches" in page


def _rows(page: str) -> list[list[str]]:
    """The audit table as text cells: when, who, action, target, before, after."""
    rows = re.findall(r'<tr class="audit-entry">(.*?)</tr>', page, re.DOTALL)
    return [[" ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in re.findall(r"<td>(.*?)</td>", r, re.DOTALL)]
            for r in rows]
