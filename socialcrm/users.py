"""People who answer customers: accounts, passwords, teams, and who may see what.

Passwords are hashed with argon2id (argon2-cffi). A user's `session_epoch` is stored in every
session cookie; bumping it (password change, disable) makes every older cookie worthless,
because the web layer compares the two on each request.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import audit, models

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
    values = _new_user_values(username, password, role, display_name)
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


def _new_user_values(username: str, password: str, role: str, display_name: str,
                     capacity: int = 5) -> dict[str, object]:
    return {"username": username, "display_name": display_name, "role": role,
            "password_hash": hash_password(password), "is_active": True, "session_epoch": 0,
            "online": False, "capacity": capacity, "created_at": models.utcnow()}


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
    await _bump_epoch(engine, user_id, **_activity(active))


def _activity(active: bool) -> dict[str, bool]:
    """An account that is disabled also goes offline, so the router stops giving it work."""
    return {"is_active": active} if active else {"is_active": False, "online": False}


async def revoke_sessions(engine: AsyncEngine, user_id: int) -> int:
    """Log the user out everywhere."""
    return await _bump_epoch(engine, user_id)


async def _bump_epoch(engine: AsyncEngine, user_id: int, **values: object) -> int:
    async with engine.begin() as conn:
        return await _bump_epoch_in(conn, user_id, **values)


async def _bump_epoch_in(conn: AsyncConnection, user_id: int, **values: object) -> int:
    await conn.execute(sa.update(user_t).where(user_t.c.id == user_id)
                       .values(session_epoch=user_t.c.session_epoch + 1, **values))
    return await conn.scalar(sa.select(user_t.c.session_epoch).where(user_t.c.id == user_id))


# -- administration: every change is audited with the values before and after ---------------

USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,100}")
MAX_CAPACITY = 100


class UserRejected(ValueError):
    """An admin change we will not make; str(exc) says why in plain words."""


@dataclass(frozen=True)
class Account:
    """A user as the admin pages show them (never the password hash)."""

    id: int
    username: str
    display_name: str
    role: str
    active: bool
    online: bool
    capacity: int
    teams: tuple[str, ...]

    def snapshot(self) -> dict[str, object]:
        """What the audit log keeps of the account."""
        return {"username": self.username, "display_name": self.display_name, "role": self.role,
                "capacity": self.capacity, "active": self.active, "teams": list(self.teams)}


@dataclass(frozen=True)
class AccountChanges:
    display_name: str
    role: str
    capacity: int
    team_ids: frozenset[int]


@dataclass(frozen=True)
class TeamView:
    id: int
    name: str
    members: tuple[str, ...]


def generate_password() -> str:
    """A random initial or reset password: shown to the admin once, stored only as a hash."""
    return secrets.token_urlsafe(12)


async def accounts(engine: AsyncEngine) -> list[Account]:
    async with engine.connect() as conn:
        return await _accounts_in(conn)


async def account(engine: AsyncEngine, user_id: int) -> Account | None:
    async with engine.connect() as conn:
        return await _account_in(conn, user_id)


async def teams(engine: AsyncEngine) -> list[TeamView]:
    """Every team with its members' usernames."""
    query = (sa.select(team_t.c.id, team_t.c.name, user_t.c.username)
             .select_from(team_t.outerjoin(member_t, member_t.c.team_id == team_t.c.id)
                          .outerjoin(user_t, user_t.c.id == member_t.c.user_id))
             .order_by(team_t.c.name, user_t.c.username))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found: dict[int, TeamView] = {}
    for row in rows:
        team = found.setdefault(row.id, TeamView(row.id, row.name, ()))
        if row.username is not None:
            found[row.id] = TeamView(row.id, row.name, (*team.members, row.username))
    return list(found.values())


async def admin_create(engine: AsyncEngine, actor_id: int, username: str, role: str, display_name: str = "",
                       capacity: int = 5, team_ids: Iterable[int] = ()) -> tuple[int, str]:
    """Create an account with a generated password; returns its id and that password."""
    _check_fields(role, capacity, display_name)
    password = generate_password()
    async with engine.begin() as conn:
        await _check_username(conn, username)
        values = _new_user_values(username, password, role, display_name, capacity)
        user_id = (await conn.execute(sa.insert(user_t).values(**values))).inserted_primary_key[0]
        await _set_teams(conn, user_id, frozenset(team_ids))
        created = await _account_in(conn, user_id)
        await audit.record(conn, actor_id, "user.create", username, None, created.snapshot())
    return user_id, password


async def admin_update(engine: AsyncEngine, actor_id: int, user_id: int, changes: AccountChanges) -> None:
    """Role, display name, capacity and teams, each kind of change audited on its own."""
    _check_fields(changes.role, changes.capacity, changes.display_name)
    async with engine.begin() as conn:
        before = await _existing(conn, user_id)
        if user_id == actor_id and changes.role != before.role:
            raise UserRejected("You cannot change your own role; ask another admin.")
        await conn.execute(sa.update(user_t).where(user_t.c.id == user_id).values(
            display_name=changes.display_name, role=changes.role, capacity=changes.capacity))
        await _set_teams(conn, user_id, changes.team_ids)
        await _audit_changes(conn, actor_id, before, await _account_in(conn, user_id))


async def admin_set_active(engine: AsyncEngine, actor_id: int, user_id: int, active: bool) -> None:
    """Enable or disable; disabling ends the account's sessions at once (epoch bump)."""
    if user_id == actor_id and not active:
        raise UserRejected("You cannot disable your own account.")
    async with engine.begin() as conn:
        before = await _existing(conn, user_id)
        await _bump_epoch_in(conn, user_id, **_activity(active))
        await audit.record(conn, actor_id, "user.enable" if active else "user.disable", before.username,
                           {"active": before.active}, {"active": active})


async def admin_reset_password(engine: AsyncEngine, actor_id: int, user_id: int) -> str:
    """A new generated password (returned once) that also ends the account's sessions."""
    if user_id == actor_id:
        raise UserRejected("Change your own password under Password instead.")
    password = generate_password()
    async with engine.begin() as conn:
        before = await _existing(conn, user_id)
        await _bump_epoch_in(conn, user_id, password_hash=hash_password(password))
        await audit.record(conn, actor_id, "password.reset", before.username, None, {"sessions": "ended"})
    return password


async def admin_create_team(engine: AsyncEngine, actor_id: int, name: str) -> int:
    name = name.strip()
    if not 0 < len(name) <= 100:
        raise UserRejected("A team name needs 1 to 100 characters.")
    async with engine.begin() as conn:
        if await conn.scalar(sa.select(team_t.c.id).where(sa.func.lower(team_t.c.name) == name.lower())):
            raise UserRejected("There is already a team with that name.")
        team_id = await ensure_team(conn, name)
        await audit.record(conn, actor_id, "team.create", name, None, {"name": name})
    return team_id


def _check_fields(role: str, capacity: int, display_name: str) -> None:
    if role not in ROLES:
        raise UserRejected(f"The role must be one of {', '.join(ROLES)}.")
    if not 0 <= capacity <= MAX_CAPACITY:
        raise UserRejected(f"The capacity must be between 0 and {MAX_CAPACITY}.")
    if len(display_name) > 200:
        raise UserRejected("The display name is too long (200 characters at most).")


async def _check_username(conn: AsyncConnection, username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise UserRejected("A username has 1 to 100 letters, digits, dots, dashes, underscores or @.")
    taken = sa.select(user_t.c.id).where(sa.func.lower(user_t.c.username) == username.lower())
    if await conn.scalar(taken) is not None:
        raise UserRejected("That username is taken.")


async def _existing(conn: AsyncConnection, user_id: int) -> Account:
    found = await _account_in(conn, user_id)
    if found is None:
        raise UserRejected("There is no such user.")
    return found


async def _account_in(conn: AsyncConnection, user_id: int) -> Account | None:
    found = await _accounts_in(conn, user_t.c.id == user_id)
    return found[0] if found else None


async def _accounts_in(conn: AsyncConnection, *where: sa.ColumnElement[bool]) -> list[Account]:
    rows = (await conn.execute(sa.select(user_t).where(*where).order_by(user_t.c.username))).all()
    query = (sa.select(member_t.c.user_id, team_t.c.name).join(team_t, team_t.c.id == member_t.c.team_id)
             .where(member_t.c.user_id.in_([row.id for row in rows])).order_by(team_t.c.name))
    names: dict[int, list[str]] = {}
    for user_id, name in (await conn.execute(query)).all():
        names.setdefault(user_id, []).append(name)
    return [Account(row.id, row.username, row.display_name, row.role, bool(row.is_active), bool(row.online),
                    row.capacity, tuple(names.get(row.id, ()))) for row in rows]


async def _set_teams(conn: AsyncConnection, user_id: int, team_ids: frozenset[int]) -> None:
    """Exactly these (existing) teams; unknown ids are ignored."""
    known = set((await conn.scalars(sa.select(team_t.c.id).where(team_t.c.id.in_(team_ids)))).all())
    await conn.execute(sa.delete(member_t).where(member_t.c.user_id == user_id, member_t.c.team_id.not_in(known)))
    current = set((await conn.scalars(sa.select(member_t.c.team_id).where(member_t.c.user_id == user_id))).all())
    for team_id in sorted(known - current):
        await conn.execute(sa.insert(member_t).values(team_id=team_id, user_id=user_id))


async def _audit_changes(conn: AsyncConnection, actor_id: int, before: Account, after: Account) -> None:
    """One entry per kind of change, so the log can be filtered by it."""
    name = before.username
    if before.role != after.role:
        await audit.record(conn, actor_id, "user.role", name, {"role": before.role}, {"role": after.role})
    fields = [f for f in ("display_name", "capacity") if getattr(before, f) != getattr(after, f)]
    if fields:
        await audit.record(conn, actor_id, "user.update", name, {f: getattr(before, f) for f in fields},
                           {f: getattr(after, f) for f in fields})
    teams_before, teams_after = {"teams": list(before.teams)}, {"teams": list(after.teams)}
    for team in sorted(set(after.teams) - set(before.teams)):
        await audit.record(conn, actor_id, "team.member.add", f"{name} in {team}", teams_before, teams_after)
    for team in sorted(set(before.teams) - set(after.teams)):
        await audit.record(conn, actor_id, "team.member.remove", f"{name} in {team}", teams_before, teams_after)
