"""Who else has a conversation open, and who is typing in it: kept in memory, never in the database.

Presence changes every few seconds for every open tab; writing that to the database would
cost a write per heartbeat (and per keystroke for typing) for something nobody needs after a
minute. So each process keeps a `PresenceBoard`, fed by small events that go through the hub
(and so across processes when the hub does): "viewing" (sent when a page opens its stream and
again every heartbeat), "typing" (at most one per few seconds per browser), "left" (the stream
closed). Entries expire by themselves: a tab that vanished without saying goodbye (a crash, a
lost network) disappears after VIEWING_TTL, a typist who stopped after TYPING_TTL.

Every method takes `now`, so the model is tested with a fixed clock. The text being typed is
never sent anywhere: the event only says that someone is typing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: A viewer's stream repeats "viewing" every HEARTBEAT; three missed beats and they are gone.
HEARTBEAT = timedelta(seconds=15)
VIEWING_TTL = timedelta(seconds=45)
#: Browsers send "typing" at most every TYPING_THROTTLE while keys are pressed.
TYPING_THROTTLE = timedelta(seconds=3)
TYPING_TTL = timedelta(seconds=6)
STATES = ("viewing", "typing", "left")


@dataclass
class _Entry:
    name: str
    seen_until: datetime
    typing_until: datetime | None = None


@dataclass(frozen=True, order=True)
class Present:
    name: str
    user_id: int
    typing: bool


def presence_event(state: str, conversation_id: int, team_id: int | None, user_id: int, name: str) -> dict[str, Any]:
    """The hub event (JSON-safe: it may cross processes). No time in it: each receiver uses its own
    clock, so processes whose clocks differ still agree on what is fresh."""
    return {"type": "presence", "state": state, "conversation_id": conversation_id, "team_id": team_id,
            "user_id": user_id, "name": name}


class PresenceBoard:
    def __init__(self) -> None:
        self._rooms: dict[int, dict[int, _Entry]] = {}

    def apply(self, event: dict[str, Any], now: datetime) -> bool:
        """Record one presence event; True when the room's visible state may have changed."""
        state, room_id = event.get("state"), event.get("conversation_id")
        if state not in STATES or not isinstance(room_id, int) or not isinstance(event.get("user_id"), int):
            return False
        room, user_id = self._rooms.setdefault(room_id, {}), event["user_id"]
        if state == "left":
            return room.pop(user_id, None) is not None
        entry = room.get(user_id)
        if entry is None:
            entry = room[user_id] = _Entry(str(event.get("name") or "someone"), now + VIEWING_TTL)
        entry.seen_until = max(entry.seen_until, now + VIEWING_TTL)
        if state == "typing":
            entry.typing_until = now + TYPING_TTL
        return True

    def who(self, conversation_id: int, now: datetime, *, besides: int | None = None) -> list[Present]:
        """Who is here now (sorted by name), leaving out `besides` (the viewer themselves)."""
        room = self._rooms.get(conversation_id, {})
        for user_id in [u for u, e in room.items() if e.seen_until <= now]:
            del room[user_id]
        if not room:
            self._rooms.pop(conversation_id, None)
        return sorted(Present(e.name, u, e.typing_until is not None and now < e.typing_until)
                      for u, e in room.items() if u != besides)

    @property
    def rooms(self) -> int:
        return len(self._rooms)


def describe(present: list[Present]) -> str:
    """The sentence the page shows (also read by screen readers through aria-live)."""
    if not present:
        return ""
    typing = [p.name for p in present if p.typing]
    viewing = [p.name for p in present if not p.typing]
    parts = []
    if typing:
        parts.append(f"{_names(typing)} {'is' if len(typing) == 1 else 'are'} typing")
    if viewing:
        parts.append(f"{_names(viewing)} {'is' if len(viewing) == 1 else 'are'} also viewing")
    return "; ".join(parts) + "."


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
