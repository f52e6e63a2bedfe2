"""Accounts: hashing, rehashing, teams, password rules."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from socialcrm import models, users


async def _hash_of(engine, username: str) -> str:
    u = models.User.__table__
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(u.c.password_hash).where(u.c.username == username))


async def test_outdated_hash_is_upgraded_on_login(engine, monkeypatch) -> None:
    await users.create_user(engine, "ana", "long enough pw", "agent")   # fast (weak) parameters
    weak = await _hash_of(engine, "ana")
    assert "m=8," in weak
    monkeypatch.setattr(users, "_hasher", PasswordHasher())             # production parameters
    assert await users.authenticate(engine, "ana", "long enough pw") is not None
    strong = await _hash_of(engine, "ana")
    assert strong != weak and "m=65536," in strong
    assert await users.authenticate(engine, "ana", "long enough pw") is not None


async def test_wrong_password_does_not_touch_the_hash(engine, monkeypatch) -> None:
    await users.create_user(engine, "ana", "long enough pw", "agent")
    before = await _hash_of(engine, "ana")
    monkeypatch.setattr(users, "_hasher", PasswordHasher())
    assert await users.authenticate(engine, "ana", "wrong password") is None
    assert await _hash_of(engine, "ana") == before


async def test_create_user_makes_teams_once(engine) -> None:
    a = await users.create_user(engine, "a", "long enough pw", "agent", team_names=["Care", "Sales"])
    b = await users.create_user(engine, "b", "long enough pw", "lead", team_names=["Care"])
    viewer_a, active = await users.load_viewer(engine, a.id)
    viewer_b, _ = await users.load_viewer(engine, b.id)
    assert active and len(viewer_a.team_ids) == 2 and len(viewer_b.team_ids) == 1
    assert viewer_b.team_ids <= viewer_a.team_ids
    assert viewer_b.sees_all and not viewer_a.sees_all


@pytest.mark.parametrize("password, username", [("short", "ana"), ("anabanana", "AnaBanana")])
async def test_weak_passwords_are_refused(engine, password: str, username: str) -> None:
    with pytest.raises(users.PasswordRejected):
        await users.create_user(engine, username, password, "agent")


async def test_unknown_role_is_refused(engine) -> None:
    with pytest.raises(ValueError):
        await users.create_user(engine, "ana", "long enough pw", "superuser")

