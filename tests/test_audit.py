"""The audit log: written in the caller's transaction, read newest first, filtered."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from socialcrm import audit, models, users

audit_t = models.AuditEntry.__table__


@pytest.fixture
async def actors(engine) -> tuple[int, int]:
    a = await users.create_user(engine, "alice", "long enough pw", "admin")
    b = await users.create_user(engine, "bob", "long enough pw", "admin")
    return a.id, b.id


async def _record(engine, actor: int | None, action: str, target: str = "x", before=None, after=None) -> int:
    async with engine.begin() as conn:
        return await audit.record(conn, actor, action, target, before, after)


async def test_entries_are_newest_first_with_the_actor_name(engine, actors) -> None:
    alice, _ = actors
    await _record(engine, alice, "user.create", "ana", None, {"role": "agent"})
    await _record(engine, None, "user.role", "ana", {"role": "agent"}, {"role": "lead"})
    found = await audit.entries(engine)
    assert [e.action for e in found] == ["user.role", "user.create"]
    assert [e.actor for e in found] == ["system", "alice"]
    assert found[0].before == {"role": "agent"} and found[0].after == {"role": "lead"}
    assert found[1].before is None and found[1].at.tzinfo is not None


async def test_an_entry_rolls_back_with_its_change(engine, actors) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await audit.record(conn, actors[0], "user.disable", "ana", {"active": True}, {"active": False})
            raise RuntimeError("the change failed")
    assert await audit.entries(engine) == []


async def test_filter_by_actor_and_action(engine, actors) -> None:
    alice, bob = actors
    await _record(engine, alice, "user.create")
    await _record(engine, bob, "user.role")
    await _record(engine, bob, "team.member.add")
    await _record(engine, bob, "username.odd")
    assert [e.action for e in await audit.entries(engine, actor=alice)] == ["user.create"]
    assert [e.action for e in await audit.entries(engine, actor=bob, action="user.role")] == ["user.role"]
    # 'user' is a family: user.* only, never 'username.*'
    assert {e.action for e in await audit.entries(engine, action="user")} == {"user.create", "user.role"}
    assert [e.action for e in await audit.entries(engine, action="team.member")] == ["team.member.add"]


async def test_like_wildcards_in_the_filter_are_literal(engine, actors) -> None:
    await _record(engine, actors[0], "userx.role")
    assert await audit.entries(engine, action="user_") == []
    assert await audit.entries(engine, action="%") == []


async def test_since_and_limit(engine, actors) -> None:
    old = await _record(engine, actors[0], "user.create", "old")
    for n in range(3):
        await _record(engine, actors[0], "user.update", f"new{n}")
    long_ago = models.utcnow() - timedelta(days=30)
    async with engine.begin() as conn:
        await conn.execute(sa.update(audit_t).where(audit_t.c.id == old).values(at=long_ago))
    recent = await audit.entries(engine, since=models.utcnow() - timedelta(days=1))
    assert "old" not in {e.target for e in recent} and len(recent) == 3
    assert [e.target for e in await audit.entries(engine, limit=2)] == ["new2", "new1"]
    assert await audit.actions(engine) == ["user.create", "user.update"]
