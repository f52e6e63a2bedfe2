"""People who answer customers: accounts, passwords, teams, and who may see what.

Passwords are hashed with argon2id (argon2-cffi). A user's `session_epoch` is stored in every
session cookie; bumping it (password change, disable) makes every older cookie worthless,
because the web layer compares the two on each request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models

ROLES = ("agent", "lead", "admin")
#: Roles that see every team's conversations.
SEE_ALL_ROLES = frozenset({"lead", "admin"})
MIN_PASSWORD_LENGTH = 8

user_t = models.User.__table__
team_t = models.Team.__table__
member_t = models.TeamMember.__table__

_hasher = PasswordHasher()


class PasswordRejected(ValueError):
    """A new password that we will not accept; str(exc) says why in plain words."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as the web layer needs them on every request."""

    id: int
    username: str
    display_name: str
    role: str
    online: bool
    session_epoch: int
    team_ids: frozenset[int]

    @property
    def sees_all(self) -> bool:
        return self.role in SEE_ALL_ROLES

    @property
    def name(self) -> str:
        return self.display_name or self.username

    def may_see_team(self, team_id: int | None) -> bool:
        return self.sees_all or team_id in self.team_ids


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_password(password: str, username: str = "") -> None:
    """Refuse passwords that are too short or equal to the username."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if username and password.lower() == username.lower():
        raise PasswordRejected("The password must not be the username.")


async def ensure_team(conn: AsyncConnection, name: str) -> int:
    """The id of the team called `name`, created if missing."""
    found = await conn.scalar(sa.select(team_t.c.id).where(team_t.c.name == name))
    if found is not None:
        return found
    return (await conn.execute(sa.insert(team_t).values(name=name))).inserted_primary_key[0]


async def create_user(engine: AsyncEngine, username: str, password: str, role: str,
                      display_name: str = "", team_names: Iterable[str] = ()) -> models.User:
    """Create an account and its team memberships (teams are created by name if missing)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    check_new_password(password, username)
    values = {"username": username, "display_name": display_name, "role": role,
              "password_hash": hash_password(password), "is_active": True, "session_epoch": 0,
              "online": False, "capacity": 5, "created_at": models.utcnow()}
    async with engine.begin() as conn:
        user_id = (await conn.execute(sa.insert(user_t).values(**values))).inserted_primary_key[0]
        for name in dict.fromkeys(team_names):
            team_id = await ensure_team(conn, name)
            await conn.execute(sa.insert(member_t).values(team_id=team_id, user_id=user_id))
    return models.User(id=user_id, **values)


async def authenticate(engine: AsyncEngine, username: str, password: str) -> models.User | None:
    """The active user with these credentials, else None; upgrades outdated hashes on the way."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(user_t).where(user_t.c.username == username))).first()
    if row is None:
        _verify(_dummy_hash(), password)
        return None
    if not _verify(row.password_hash, password) or not row.is_active:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        async with engine.begin() as conn:
            await conn.execute(sa.update(user_t).where(user_t.c.id == row.id)
                               .values(password_hash=hash_password(password)))
    return models.User.model_validate(row._asdict())


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a miss costs as long as a wrong password."""
    return _hasher.hash("not a real password; only here to spend the same time")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def load_viewer(engine: AsyncEngine, user_id: int) -> tuple[Viewer, bool] | None:
    """The viewer for a session's user id and whether the account is active; None if gone."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(user_t).where(user_t.c.id == user_id))).first()
        if row is None:
            return None
        teams = (await conn.scalars(sa.select(member_t.c.team_id)
                                    .where(member_t.c.user_id == user_id))).all()
    viewer = Viewer(id=row.id, username=row.username, display_name=row.display_name, role=row.role,
                    online=row.online, session_epoch=row.session_epoch, team_ids=frozenset(teams))
    return viewer, bool(row.is_active)


async def change_password(engine: AsyncEngine, user_id: int, current: str, new: str) -> int:
    """Set a new password and bump the session epoch (other sessions end); returns the new epoch."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(user_t).where(user_t.c.id == user_id))).first()
    if row is None or not _verify(row.password_hash, current):
        raise PasswordRejected("The current password is not correct.")
    check_new_password(new, row.username)
    return await _bump_epoch(engine, user_id, password_hash=hash_password(new))


async def set_active(engine: AsyncEngine, user_id: int, active: bool) -> None:
    """Enable or disable an account; disabling also ends its sessions."""
    await _bump_epoch(engine, user_id, is_active=active, **({} if active else {"online": False}))


async def revoke_sessions(engine: AsyncEngine, user_id: int) -> int:
    """Log the user out everywhere."""
    return await _bump_epoch(engine, user_id)


async def _bump_epoch(engine: AsyncEngine, user_id: int, **values: object) -> int:
    async with engine.begin() as conn:
        await conn.execute(sa.update(user_t).where(user_t.c.id == user_id)
                           .values(session_epoch=user_t.c.session_epoch + 1, **values))
        return await conn.scalar(sa.select(user_t.c.session_epoch).where(user_t.c.id == user_id))
