"""The inbox language filter finds conversations by the language their customer's platform reported."""

from __future__ import annotations

import re

from tests.support import T0, ev, minutes
from tests.web.conftest import conversation_of

ROW_ID = re.compile(r'data-conversation-id="(\d+)"')


def rows(html: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(html)]


async def test_language_filter_finds_conversations_by_their_customers_language(signed_in, world) -> None:
    await world.ingest(world.care_channel, [
        ev("message", "a", "dm-a", author="ca", text="Hvor er pakken?", detail={"language": "nb"}),
        ev("message", "b", "dm-b", author="cb", text="Var är paketet?", detail={"language": "sv"}),
        ev("message", "c", "dm-c", author="cc", text="?"),
    ])
    ids = {k: await conversation_of(world.core, world.care_channel, k) for k in ("a", "b", "c")}
    b = await signed_in("agent")
    _, html = await b.get("/?language=nb")
    assert rows(html) == [ids["a"]]
    _, html = await b.get("/inbox/list?language=sv")
    assert rows(html) == [ids["b"]]

    # The third customer's platform names a language only in a later message: now it is found too.
    await world.ingest(world.care_channel, [ev("message", "c2", "dm-c", author="cc", text="Hei igjen",
                                               at=T0 + minutes(5), detail={"language": "nb"})])
    _, html = await b.get("/?language=nb")
    assert sorted(rows(html)) == sorted([ids["a"], ids["c"]])
