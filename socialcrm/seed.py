"""A seeded, synthetic month of customer care written as real rows: `socialcrm seed`.

Simulated channels named like platforms, agents, contacts, identities, conversations, messages
and their event logs, shaped like a busy team's: customers write mostly by day, agents answer in a
spread around each channel's target (some fast, some late), some conversations wait on the
customer, most are resolved, a few are reopened, the newest still wait. The same seed and `now`
give the same rows. Rows are written in bulk with explicit ids (a few statements per table, not
one per row), so ten thousand conversations take seconds; the SLA columns of the conversations
still open are computed from their logs like ingest would (`sla_policies.clock_values`).

Seeded agents have no usable password (an admin resets one to sign in as them).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.calendars import add_business_time
from socialcrm.channels import create_channel
from socialcrm.metrics import Event
from socialcrm.models import utcnow
from socialcrm.registry import Registry
from socialcrm.sla_policies import SlaSetup, clock_values, load_sla_setup
from socialcrm.users import ensure_team
from socialcrm.vault import Vault

CHUNK = 2000
NO_PASSWORD = "!seeded: no password"   # never a valid argon2 hash, so nobody signs in with it
TEAMS = ("Kundeservice", "Sosiale medier")
FIRST = ("Kari", "Ola", "Ingrid", "Lars", "Sofie", "Erik", "Maja", "Jonas", "Emma", "Henrik", "Nora", "Oskar",
         "Astrid", "Elias", "Linnea", "Magnus", "Sara", "Anders", "Ida", "Johan")
LAST = ("Nordmann", "Hansen", "Berg", "Johansson", "Lund", "Nilsen", "Andersson", "Lie", "Karlsson", "Dahl",
        "Bakken", "Lindqvist", "Haugen", "Svensson", "Larsen", "Eriksson")
ASKS = ("Hvor er pakken min? Ordre {n}", "Var är min beställning {n}?", "I was charged twice for order {n}",
        "Appen krasjer når jeg logger inn", "Can I change the delivery address for {n}?",
        "Jeg vil returnere en vare", "Kan ni hjälpa mig med fakturan?", "Your site has been down all morning!",
        "Takk for hjelpen i går!", "Where do I find my invoice?")
ANSWERS = ("Takk for at du tok kontakt! Vi ser på det nå.", "Tack! Vi har skickat en ny länk.",
           "Sorry about that, we have refunded the double charge.", "Her er en guide som viser hvordan.")
#: Seeded channels: a name and the share of its conversations that are public posts.
CHANNELS = (("Facebook", 0.5), ("Instagram", 0.45), ("X", 0.8), ("WhatsApp", 0.0), ("E-mail", 0.0),
            ("Telegram", 0.1), ("Mastodon", 0.7), ("Bluesky", 0.9))
DEMO_CONNECTOR = "simulator"
NOWHERE = "http://127.0.0.1:9"          # the discard port: a reply to seeded data fails, visibly
#: Share of customers writing in each local hour (0-23): quiet at night, busy from morning to evening.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 7, 10, 11, 11, 10, 10, 10, 10, 9, 9, 8, 8, 8, 7, 5, 3, 2)


@dataclass(frozen=True)
class Options:
    conversations: int = 10_000
    days: int = 30
    agents: int = 12
    seed: int = 5
    channels: int = 5                    # the first of CHANNELS


@dataclass
class Seeded:
    channels: list[int] = field(default_factory=list)
    agents: list[int] = field(default_factory=list)
    conversations: int = 0
    messages: int = 0
    events: int = 0


@dataclass
class _Rows:
    """Everything to insert, by table, with ids given here."""

    contacts: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Agent:
    id: int
    speed: float          # times the typical answer time: some are quicker than others
    capacity: int         # 0 while offline


@dataclass(frozen=True)
class _Channel:
    id: int
    team_id: int
    public_share: float   # of its conversations, how many are public posts


async def seed(engine: AsyncEngine, registry: Registry, vault: Vault, options: Options = Options(),
               now: datetime | None = None) -> Seeded:
    """Write the data set (channels first, then everything else in one transaction); say what was written."""
    if not 1 <= options.channels <= len(CHANNELS):
        raise ValueError(f"choose 1 to {len(CHANNELS)} channels")
    now = now or utcnow()
    rng = random.Random(options.seed)
    async with engine.begin() as conn:
        teams = [await ensure_team(conn, name) for name in TEAMS]
    channels = await _channels(engine, registry, vault, options, teams)
    async with engine.begin() as conn:
        agents = await _agents(conn, teams, options, rng, now)
        setup = await load_sla_setup(conn)
        rows = await _generate(conn, channels, agents, setup, options, rng, now)
        for table, batch in ((models.Contact, rows.contacts), (models.Identity, rows.identities),
                             (models.Conversation, rows.conversations), (models.Message, rows.messages),
                             (models.ConversationEvent, rows.events)):
            await _insert(conn, table.__table__, batch)
    return Seeded([c.id for c in channels], [a.id for a in agents], len(rows.conversations),
                  len(rows.messages), len(rows.events))


async def _insert(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        await conn.execute(table.insert(), rows[start:start + CHUNK])
    if rows and conn.dialect.name == "postgresql":   # explicit ids leave the sequence behind
        await conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                                   f"(SELECT max(id) FROM \"{table.name}\"))"))


async def _next_id(conn: AsyncConnection, table: sa.Table) -> int:
    return int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))) or 0) + 1


async def _agents(conn: AsyncConnection, teams: list[int], options: Options, rng: random.Random,
                  now: datetime) -> list[_Agent]:
    """The seeded agents: three in four online, split over the teams, each with a pace of their own."""
    user_t, member_t = models.User.__table__, models.TeamMember.__table__
    out = []
    for i in range(options.agents):
        username, online, capacity = f"seed{options.seed}-agent{i + 1}", i % 4 != 3, rng.choice((5, 6, 8, 10))
        row = (await conn.execute(sa.select(user_t.c.id, user_t.c.online, user_t.c.capacity)
                                  .where(user_t.c.username == username))).first()
        if row is None:
            name = f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}"
            found = (await conn.execute(user_t.insert().values(
                username=username, display_name=name, password_hash=NO_PASSWORD, role="agent", is_active=True,
                session_epoch=0, online=online, online_since=now if online else None, capacity=capacity,
                created_at=now))).inserted_primary_key[0]
            await conn.execute(member_t.insert().values(team_id=teams[i % len(teams)], user_id=found))
        else:
            found, online, capacity = row.id, bool(row.online), row.capacity
        out.append(_Agent(found, rng.uniform(0.4, 1.6), capacity if online else 0))
    return out


def _within_capacity(conversations: list[dict[str, Any]], agents: Sequence[_Agent]) -> None:
    """Open work beyond what an agent can hold (or of an agent offline) goes back to the queue, as the router would."""
    room = {a.id: a.capacity for a in agents}
    for conv in reversed(conversations):              # the newest keep their agent
        agent = conv["assignee_id"]
        if conv["status"] == "resolved" or agent is None:
            continue
        if room.get(agent, 0) > 0:
            room[agent] -= 1
        else:
            conv["assignee_id"], conv["assignment_reason"] = None, ""


async def _channels(engine: AsyncEngine, registry: Registry, vault: Vault, options: Options,
                    teams: list[int]) -> list[_Channel]:
    """Simulated accounts named like the platforms they stand for (the demo's connector, so every
    seeded channel loads like a real one); replies to them go to an address nobody listens on."""
    channel_t = models.Channel.__table__
    out = []
    for i, (name, public_share) in enumerate(CHANNELS[:options.channels]):
        account = f"seed{options.seed}-{i + 1}"
        async with engine.connect() as conn:
            found = await conn.scalar(sa.select(channel_t.c.id).where(channel_t.c.connector == DEMO_CONNECTOR,
                                                                      channel_t.c.account_id == account))
        team = teams[i % len(teams)]
        if found is None:
            found = await create_channel(engine, registry, vault, connector=DEMO_CONNECTOR, name=name, team_id=team,
                                         settings={"account_id": account, "webhook_secret": secrets.token_urlsafe(16),
                                                   "api_token": secrets.token_urlsafe(16), "api_base_url": NOWHERE})
        out.append(_Channel(found, team, public_share))
    return out


async def _generate(conn: AsyncConnection, channels: Sequence[_Channel], agents: Sequence[_Agent],
                    setup: SlaSetup, options: Options, rng: random.Random, now: datetime) -> _Rows:
    ids = {name: await _next_id(conn, t.__table__) for name, t in (
        ("contact", models.Contact), ("identity", models.Identity), ("conversation", models.Conversation),
        ("message", models.Message), ("event", models.ConversationEvent))}
    rows = _Rows()
    for n in range(options.conversations):
        channel = rng.choice(channels)
        _conversation(rows, ids, n, channel, agents, setup, options, rng, now)
    _within_capacity(rows.conversations, agents)
    _number(rows.messages, ids["message"])
    _number(rows.events, ids["event"])
    return rows


def _number(rows: list[dict[str, Any]], first: int) -> None:
    for offset, row in enumerate(rows):
        row["id"] = first + offset


def _started_at(rng: random.Random, days: int, now: datetime) -> datetime:
    """A local-daytime-heavy instant in the last `days` days (never in the future)."""
    day = now - timedelta(days=rng.randrange(days))
    hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
    at = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60), microsecond=0) - timedelta(hours=1)
    return min(at, now - timedelta(minutes=rng.uniform(1, 30)))


def _conversation(rows: _Rows, ids: dict[str, int], n: int, channel: _Channel,
                  agents: Sequence[_Agent], setup: SlaSetup, options: Options,
                  rng: random.Random, now: datetime) -> None:
    public = rng.random() < channel.public_share
    conv_id, contact_id, identity_id = ids["conversation"] + n, ids["contact"] + n, ids["identity"] + n
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    started = _started_at(rng, options.days, now)
    rows.contacts.append({"id": contact_id, "name": name, "created_at": started})
    followers = rng.choice((None, 40, 300, 2_000, 25_000)) if public else None
    rows.identities.append({"id": identity_id, "channel_id": channel.id, "contact_id": contact_id,
                            "original_contact_id": contact_id, "external_id": f"seed{options.seed}-c{conv_id}",
                            "name": name, "handle": name.lower().replace(" ", "_"), "avatar_url": "",
                            "followers": followers, "is_self": False, "unreachable": False})
    policy = setup.policy_in_team(channel.team_id, channel.id, public)
    picked = rng.choice(agents)
    agent, speed = picked.id, picked.speed
    log, said = _story(rng, started, now, policy, agent, speed, public)
    if not any(e.kind == "first_response" for e in log) and rng.random() < 0.5:
        agent, log = None, [e for e in log if e.kind != "assigned"]   # still in the queue
    conv = _conversation_row(conv_id, channel, contact_id, identity_id, public, started, log, said, agent)
    if conv["status"] != "resolved":
        conv |= clock_values(log, policy, public, followers, now)
    rows.conversations.append(conv)
    for k, (at, who, text) in enumerate(said):
        rows.messages.append(_message_row(conv_id, channel.id, identity_id, public, at, who, text, k, options))
    rows.events += [{"conversation_id": conv_id, "kind": e.kind, "at": e.at, "user_id": e.user_id,
                     "detail": dict(e.detail)} for e in log]


def _story(rng: random.Random, at: datetime, now: datetime, policy: Any, agent: int, speed: float,
           public: bool) -> tuple[list[Event], list[tuple[datetime, int | None, str]]]:
    """The event log and the messages (time, agent or None for the customer, text) of one conversation."""
    ask = rng.choice(ASKS).format(n=rng.randrange(10_000, 99_999))
    log = [Event("created", at, None, {"public": public}), Event("customer_message", at),
           Event("assigned", at, agent, {"reason": "seeded"})]
    said: list[tuple[datetime, int | None, str]] = [(at, None, ask)]
    if not public and rng.random() < 0.25:
        log.append(Event("responded", at + timedelta(seconds=3), None, {"automated": True}))
    target = policy.first_response_minutes * 60
    for turn in range(rng.choice((1, 1, 1, 2, 2, 3))):
        at = add_business_time(policy.calendar, at, rng.expovariate(1 / (0.45 * target * speed)))
        if at > now:
            return log, said
        log.append(Event("first_response" if turn == 0 else "responded", at, agent))
        said.append((at, agent, rng.choice(ANSWERS)))
        waiting = rng.random() < 0.2
        if waiting:
            log.append(Event("pending", at, agent))
        at += timedelta(minutes=rng.expovariate(1 / 180))
        if at > now or rng.random() < 0.45:
            break
        log.append(Event("customer_message", at))
        said.append((at, None, rng.choice(ASKS).format(n=rng.randrange(10_000, 99_999))))
    return _ending(rng, log, said, at, now, agent)


def _ending(rng: random.Random, log: list[Event], said: list[Any], at: datetime, now: datetime,
            agent: int) -> tuple[list[Event], list[Any]]:
    """Answered conversations are resolved (all but a few of the older ones); a few come back."""
    answered = any(e.kind == "first_response" for e in log)
    at += timedelta(minutes=rng.expovariate(1 / 90))
    still_open = 0.005 if now - at > timedelta(days=1) else 0.15
    if not answered or at > now or rng.random() < still_open:
        return log, said
    log.append(Event("resolved", at, agent))
    reopen = at + timedelta(days=rng.uniform(0.2, 9))
    if rng.random() < 0.06 and reopen < now:
        log.append(Event("reopened", reopen))
        again = reopen + timedelta(hours=rng.uniform(1, 30))
        if again < now - timedelta(hours=2):   # handled again, unless it came back just now
            log += [Event("responded", again, agent), Event("resolved", again + timedelta(minutes=5), agent)]
            said.append((again, agent, rng.choice(ANSWERS)))
    return log, said


def _conversation_row(conv_id: int, channel: _Channel, contact_id: int, identity_id: int, public: bool,
                      started: datetime, log: list[Event], said: list[Any], agent: int | None) -> dict[str, Any]:
    state = "open"
    for e in log:
        state = {"pending": "pending", "resolved": "resolved", "reopened": "open", "open": "open"}.get(e.kind, state)
        if e.kind == "customer_message" and state == "pending":
            state = "open"
    first = next((e.at for e in log if e.kind == "first_response"), None)
    customer = [at for at, who, _ in said if who is None]
    return {"id": conv_id, "channel_id": channel.id, "team_id": channel.team_id, "contact_id": contact_id,
            "identity_id": identity_id, "thread_key": f"seed-{conv_id}", "thread_external_id": f"seed-{conv_id}",
            "public": public, "status": state, "priority": 0, "first_response_at": first,
            "last_customer_message_at": customer[-1], "last_message_at": said[-1][0],
            "last_message_preview": said[-1][2][:140], "assignee_id": agent, "assignment_reason": "seeded",
            "created_at": started, "waiting_since": None, "sla_due_at": None, "sla_risk_at": None}


def _message_row(conv_id: int, channel_id: int, identity_id: int, public: bool, at: datetime, who: int | None,
                 text: str, k: int, options: Options) -> dict[str, Any]:
    return {"conversation_id": conv_id, "channel_id": channel_id, "external_id": f"seed{options.seed}-m{conv_id}-{k}",
            "direction": "in" if who is None else "out", "kind": "comment" if public else "message",
            "public": public, "author_identity_id": identity_id if who is None else None, "author_user_id": who,
            "text": text, "in_reply_to_external_id": None, "attachments": [], "status": "received" if who is None else "sent",
            "error": "", "moderation": "", "deleted": False, "edited_at": None, "reactions": {}, "created_at": at}
