"""Full-text search over messages (notes included), customer names and handles.

SQLite: FTS5 external-content tables kept in step with `message`, `identity` and `contact` by
triggers. PostgreSQL: a stored generated `message.search_tsv` column and GIN indexes on
`to_tsvector('simple', ...)` ('simple': customers write Norwegian, Swedish, English and mixtures,
so no language's stemming or stop words). Either way ingest does not change: the database keeps
the index current on every insert and update.

What the user types never reaches a query parser as syntax: it is cut into words and quoted
phrases here, every term is quoted for FTS5 (or passed through `phraseto_tsquery` on PostgreSQL),
so `"`, `*`, `-`, `:`, `(`, NEAR and OR are just text. All terms must match; the last bare word
also matches as a prefix (as-you-type). Work is bounded: the newest MESSAGE_CAP matching messages
and PEOPLE_CAP matching people are read, newest first, and grouped into conversations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from socialcrm import models
from socialcrm.users import Viewer

message_t = models.Message.__table__
conv_t = models.Conversation.__table__
channel_t = models.Channel.__table__
contact_t = models.Contact.__table__
identity_t = models.Identity.__table__

PAGE_SIZE = 20
MESSAGE_CAP = 500
PEOPLE_CAP = 200
MAX_QUERY_CHARS = 200
MAX_TERMS = 12
#: A shorter last word is matched whole: a one- or two-letter prefix would read most of the index.
MIN_PREFIX = 3
SNIPPET_CHARS = 160

# -- the index objects (also created, frozen, by migration 0008) ------------------------------

TOKENIZE = "unicode61 remove_diacritics 0"    # keep æ/ø/å distinct, as PostgreSQL 'simple' does
FTS_TABLES = ("message_fts", "identity_fts", "contact_fts")
PG_INDEXES = ("ix_message_fts", "ix_identity_fts", "ix_contact_fts")
SIMPLE = "'simple'::regconfig"
#: Handles like "ola.nordmann" are one "host" word to PostgreSQL's parser: index the parts too.
PG_IDENTITY_DOC = f"to_tsvector({SIMPLE}, name || ' ' || handle || ' ' || translate(handle, '._', '  '))"
#: Messages get a stored tsvector column (not in the models: SQLite has no to_tsvector), so a
#: phrase's recheck and every match read it instead of parsing the text again.
PG_MESSAGE_COLUMN = "search_tsv"
PG_MESSAGE_DOC = f"message.{PG_MESSAGE_COLUMN}"
PG_CONTACT_DOC = f"to_tsvector({SIMPLE}, name)"


def _fts5_statements(table: str, source: str, columns: tuple[str, ...]) -> list[str]:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    delete = f"INSERT INTO {table}({table}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    insert = f"INSERT INTO {table}(rowid, {cols}) VALUES (new.id, {new});"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5({cols}, content='{source}', "
        f"content_rowid='id', tokenize='{TOKENIZE}')",
        f"CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON {source} BEGIN {insert} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON {source} BEGIN {delete} END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_au AFTER UPDATE OF {cols} ON {source} BEGIN {delete} {insert} END",
    ]


SQLITE_DDL = (_fts5_statements("message_fts", "message", ("text",))
              + _fts5_statements("identity_fts", "identity", ("name", "handle"))
              + _fts5_statements("contact_fts", "contact", ("name",)))
POSTGRES_DDL = [
    f"ALTER TABLE message ADD COLUMN IF NOT EXISTS {PG_MESSAGE_COLUMN} tsvector "
    f"GENERATED ALWAYS AS (to_tsvector({SIMPLE}, text)) STORED",
    f"CREATE INDEX IF NOT EXISTS ix_message_fts ON message USING gin ({PG_MESSAGE_COLUMN})",
    f"CREATE INDEX IF NOT EXISTS ix_identity_fts ON identity USING gin ({PG_IDENTITY_DOC})",
    f"CREATE INDEX IF NOT EXISTS ix_contact_fts ON contact USING gin ({PG_CONTACT_DOC})",
]


async def create_index_objects(conn: AsyncConnection) -> None:
    """The FTS tables and triggers (SQLite) or GIN indexes (PostgreSQL): not in the metadata."""
    for statement in SQLITE_DDL if conn.dialect.name == "sqlite" else POSTGRES_DDL:
        await conn.exec_driver_sql(statement)


async def drop_index_objects(conn: AsyncConnection) -> None:
    """SQLite keeps an FTS table when its content table is dropped: drop it too (tests, resets)."""
    if conn.dialect.name == "sqlite":
        for table in FTS_TABLES:
            await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")


# -- the query ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Term:
    text: str
    prefix: bool = False


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]

    @property
    def empty(self) -> bool:
        return not self.terms

    def words(self) -> list[tuple[str, bool]]:
        """The letters-and-digits runs of every term, for highlighting: (run, is a prefix)."""
        found = []
        for t in self.terms:
            runs = re.findall(r"[^\W_]+", t.text)
            found += [(run, t.prefix and n == len(runs) - 1) for n, run in enumerate(runs)]
        return found


_PHRASE = re.compile(r'"([^"]*)"')


def _usable(text: str) -> bool:
    """A term without a letter or digit (a lone '-', an emoji) would match nothing or everything."""
    return any(ch.isalnum() for ch in text)


def parse(raw: str) -> Query:
    """Words and "quoted phrases"; everything else in the input is plain text."""
    raw = raw[:MAX_QUERY_CHARS].replace("\x00", "")
    phrases = [p.strip() for p in _PHRASE.findall(raw)]
    words = _PHRASE.sub(" ", raw).replace('"', " ").split()
    words = [w.lstrip("@") for w in words]
    terms = [Term(p) for p in phrases if _usable(p)] + [Term(w) for w in words if _usable(w)]
    terms = terms[:MAX_TERMS]
    ends_with_phrase = bool(phrases) and raw.rstrip().endswith('"')
    last_is_word = bool(words) and _usable(words[-1]) and terms and terms[-1].text == words[-1]
    if last_is_word and not ends_with_phrase and len(words[-1]) >= MIN_PREFIX:
        terms[-1] = Term(words[-1], prefix=True)
    return Query(tuple(terms))


def fts5_match(query: Query) -> str:
    """An FTS5 MATCH string in which every term is a quoted string: no operator can get in."""
    quoted = ['"' + t.text.replace('"', '""') + '"' + ("*" if t.prefix else "") for t in query.terms]
    return " ".join(quoted)


def _pg_prefix(text: str) -> str | None:
    """'ola' <-> 'nordm':* for to_tsquery, from letters and digits only (nothing to escape)."""
    runs = re.findall(r"[^\W_]+", text.lower())
    if not runs:
        return None
    return " <-> ".join(f"'{r}'" for r in runs) + ":*"


def pg_tsquery(query: Query) -> Any:
    """Every term through phraseto_tsquery (the server's own parser, as for the documents)."""
    parts = []
    for term in query.terms:
        part = sa.func.phraseto_tsquery(sa.literal_column(SIMPLE), term.text)
        prefix = _pg_prefix(term.text) if term.prefix else None
        if prefix:
            part = part.op("||")(sa.func.to_tsquery(sa.literal_column(SIMPLE), prefix))
        parts.append(part)
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.op("&&")(part)
    return combined


# -- results -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    conversation_id: int
    at: datetime | None
    text: str
    source: str              # in | out | note | person


@dataclass(frozen=True)
class Result:
    conversation_id: int
    channel_name: str
    public: bool
    status: str
    customer_name: str
    customer_handle: str
    at: datetime | None
    source: str
    snippet: list[tuple[str, bool]]      # (text, is_match): the template marks, autoescaped


@dataclass
class Page:
    query: Query
    results: list[Result] = field(default_factory=list)
    page: int = 1
    has_more: bool = False
    capped: bool = False                 # more matches exist than were read


def _visible(viewer: Viewer) -> list[Any]:
    if viewer.sees_all:
        return []
    return [conv_t.c.team_id.in_(sorted(viewer.team_ids) or [-1])]


async def search(engine: AsyncEngine, viewer: Viewer, raw: str, page: int = 1) -> Page:
    """One page of conversations matching `raw`, newest match first."""
    query = parse(raw)
    page = max(1, page)
    if query.empty:
        return Page(query, page=page)
    async with engine.connect() as conn:
        messages = await _message_hits(conn, viewer, query)
        people = await _people_hits(conn, viewer, query)
        hits = _merge_hits(messages, people)
        start = (page - 1) * PAGE_SIZE
        shown = hits[start:start + PAGE_SIZE]
        results = await _results(conn, shown, query)
    return Page(query, results, page, has_more=len(hits) > start + PAGE_SIZE, capped=len(messages) >= MESSAGE_CAP)


async def _message_hits(conn: AsyncConnection, viewer: Viewer, query: Query) -> list[Hit]:
    m = message_t
    columns = (m.c.conversation_id, m.c.created_at, m.c.text, m.c.direction)
    if conn.dialect.name == "sqlite":
        fts = sa.table("message_fts", sa.column("rowid"))
        stmt = (sa.select(*columns)
                .select_from(fts.join(m, m.c.id == fts.c.rowid).join(conv_t, conv_t.c.id == m.c.conversation_id))
                .where(sa.text("message_fts MATCH :match").bindparams(match=fts5_match(query)))
                .order_by(fts.c.rowid.desc()))
    else:
        stmt = (sa.select(*columns)
                .select_from(m.join(conv_t, conv_t.c.id == m.c.conversation_id))
                .where(sa.literal_column(PG_MESSAGE_DOC).op("@@")(pg_tsquery(query)))
                .order_by(m.c.id.desc()))
    stmt = stmt.where(m.c.deleted.is_(False), *_visible(viewer)).limit(MESSAGE_CAP)
    return [Hit(r.conversation_id, r.created_at, r.text, r.direction) for r in (await conn.execute(stmt)).all()]


async def _matching_contacts(conn: AsyncConnection, query: Query) -> list[int]:
    i, c = identity_t, contact_t
    if conn.dialect.name == "sqlite":
        match = fts5_match(query)
        ids = sa.union(
            sa.select(i.c.contact_id).where(i.c.id.in_(sa.text(
                "SELECT rowid FROM identity_fts WHERE identity_fts MATCH :im").bindparams(im=match))),
            sa.select(c.c.id).where(c.c.id.in_(sa.text(
                "SELECT rowid FROM contact_fts WHERE contact_fts MATCH :cm").bindparams(cm=match))))
    else:
        tsq = pg_tsquery(query)
        ids = sa.union(
            sa.select(i.c.contact_id).where(sa.literal_column(PG_IDENTITY_DOC).op("@@")(tsq)),
            sa.select(c.c.id).where(sa.literal_column(PG_CONTACT_DOC).op("@@")(tsq)))
    found = (await conn.execute(sa.select(ids.subquery().c[0]).limit(PEOPLE_CAP))).scalars().all()
    return list(found)


async def _people_hits(conn: AsyncConnection, viewer: Viewer, query: Query) -> list[Hit]:
    contacts = await _matching_contacts(conn, query)
    if not contacts:
        return []
    when = sa.func.coalesce(conv_t.c.last_message_at, conv_t.c.created_at)
    stmt = (sa.select(conv_t.c.id, when.label("at"), identity_t.c.name, identity_t.c.handle)
            .select_from(conv_t.join(identity_t, identity_t.c.id == conv_t.c.identity_id))
            .where(conv_t.c.contact_id.in_(contacts), *_visible(viewer))
            .order_by(when.desc(), conv_t.c.id.desc()).limit(PEOPLE_CAP))
    return [Hit(r.id, r.at, f"{r.name} @{r.handle}" if r.handle else r.name, "person")
            for r in (await conn.execute(stmt)).all()]


def _merge_hits(messages: list[Hit], people: list[Hit]) -> list[Hit]:
    """One hit per conversation (its newest matching message, else the person), newest first."""
    best: dict[int, Hit] = {}
    for hit in messages + people:
        best.setdefault(hit.conversation_id, hit)
    return sorted(best.values(), key=lambda h: (h.at is not None, h.at, h.conversation_id), reverse=True)


async def _results(conn: AsyncConnection, hits: list[Hit], query: Query) -> list[Result]:
    if not hits:
        return []
    customer = sa.func.coalesce(sa.func.nullif(identity_t.c.name, ""), contact_t.c.name)
    rows = (await conn.execute(
        sa.select(conv_t.c.id, conv_t.c.public, conv_t.c.status, channel_t.c.name.label("channel_name"),
                  customer.label("customer_name"), identity_t.c.handle)
        .select_from(conv_t.join(channel_t, channel_t.c.id == conv_t.c.channel_id)
                     .join(contact_t, contact_t.c.id == conv_t.c.contact_id)
                     .join(identity_t, identity_t.c.id == conv_t.c.identity_id))
        .where(conv_t.c.id.in_([h.conversation_id for h in hits])))).all()
    by_id = {r.id: r for r in rows}
    words = query.words()
    return [Result(h.conversation_id, by_id[h.conversation_id].channel_name, bool(by_id[h.conversation_id].public),
                   by_id[h.conversation_id].status, by_id[h.conversation_id].customer_name or "",
                   by_id[h.conversation_id].handle or "", h.at, h.source, snippet(h.text, words))
            for h in hits if h.conversation_id in by_id]


def snippet(text: str, words: list[tuple[str, bool]], width: int = SNIPPET_CHARS) -> list[tuple[str, bool]]:
    """A window of `text` around the first match, cut into (piece, is_match) for safe marking.

    `words` are (word, is_prefix): a prefix marks the whole word it starts."""
    text = " ".join(text.split())
    if not words:
        return [(text[:width], False)]
    alternatives = [re.escape(w) + (r"[^\W_]*" if prefix else r"(?![^\W_])")
                    for w, prefix in sorted(set(words), key=lambda wp: len(wp[0]), reverse=True)]
    pattern = re.compile(r"(?<![^\W_])(?:" + "|".join(alternatives) + ")", re.IGNORECASE)
    first = pattern.search(text)
    start = max(0, (first.start() if first else 0) - width // 3)
    end = min(len(text), start + width)
    window = text[start:end]
    pieces: list[tuple[str, bool]] = [("…", False)] if start > 0 else []
    last = 0
    for found in pattern.finditer(window):
        if found.start() > last:
            pieces.append((window[last:found.start()], False))
        pieces.append((found.group(0), True))
        last = found.end()
    if last < len(window):
        pieces.append((window[last:], False))
    if end < len(text):
        pieces.append(("…", False))
    return pieces
