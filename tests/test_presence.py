"""The presence model with a fixed clock: who is viewing, who is typing, and when they disappear."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from socialcrm.presence import (
    TYPING_TTL,
    VIEWING_TTL,
    Present,
    PresenceBoard,
    describe,
    presence_event,
)

T = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def seen(board, state, user_id, name, at, conv=7):
    return board.apply(presence_event(state, conv, 1, user_id, name), at)


def test_viewers_are_listed_without_the_viewer_themselves():
    board = PresenceBoard()
    seen(board, "viewing", 1, "Kari", T)
    seen(board, "viewing", 2, "Bo", T)
    seen(board, "viewing", 3, "Ana", T, conv=8)
    assert board.who(7, T, besides=1) == [Present("Bo", 2, False)]
    assert [p.name for p in board.who(7, T)] == ["Bo", "Kari"]


def test_a_tab_that_stops_beating_disappears_after_the_ttl():
    board = PresenceBoard()
    seen(board, "viewing", 2, "Bo", T)
    assert board.who(7, T + VIEWING_TTL - timedelta(seconds=1))
    assert board.who(7, T + VIEWING_TTL) == []
    assert board.rooms == 0                      # nothing left behind for empty rooms


def test_heartbeats_keep_a_viewer_and_left_removes_at_once():
    board = PresenceBoard()
    seen(board, "viewing", 2, "Bo", T)
    seen(board, "viewing", 2, "Bo", T + timedelta(seconds=30))
    assert board.who(7, T + timedelta(seconds=60))
    assert seen(board, "left", 2, "Bo", T + timedelta(seconds=61)) is True
    assert board.who(7, T + timedelta(seconds=61)) == []
    assert seen(board, "left", 2, "Bo", T + timedelta(seconds=62)) is False


def test_typing_shows_for_a_few_seconds_then_falls_back_to_viewing():
    board = PresenceBoard()
    seen(board, "viewing", 2, "Bo", T)
    seen(board, "typing", 2, "Bo", T + timedelta(seconds=10))
    assert board.who(7, T + timedelta(seconds=11)) == [Present("Bo", 2, True)]
    later = T + timedelta(seconds=10) + TYPING_TTL
    assert board.who(7, later) == [Present("Bo", 2, False)]


def test_typing_alone_also_makes_someone_present():
    board = PresenceBoard()
    seen(board, "typing", 4, "Dag", T)
    assert board.who(7, T) == [Present("Dag", 4, True)]


def test_malformed_events_are_ignored():
    board = PresenceBoard()
    assert board.apply({"state": "dancing", "conversation_id": 7, "user_id": 1}, T) is False
    assert board.apply({"state": "viewing", "conversation_id": "7", "user_id": 1}, T) is False
    assert board.apply({"state": "viewing", "conversation_id": 7}, T) is False
    assert board.rooms == 0


def test_the_sentence():
    assert describe([]) == ""
    assert describe([Present("Bo", 2, False)]) == "Bo is also viewing."
    assert describe([Present("Ana", 3, True), Present("Bo", 2, False), Present("Cy", 5, False)]) == \
        "Ana is typing; Bo and Cy are also viewing."
    assert describe([Present("Ana", 3, True), Present("Bo", 2, True)]) == "Ana and Bo are typing."
