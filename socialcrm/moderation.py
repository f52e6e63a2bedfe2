"""Hide, unhide or delete a public item on the platform, recorded with who and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from socialcrm import models
from socialcrm.errors import SendError
from socialcrm.eventlog import log_event
from socialcrm.replies import ReplyRejected

if TYPE_CHECKING:
    from socialcrm.core import Core

message_t = models.Message.__table__
conversation_t = models.Conversation.__table__
#: What each action leaves on our copy of the item.
RESULT = {"hide": {"moderation": "hidden"}, "unhide": {"moderation": ""}, "delete": {"deleted": True}}


class ModerationRejected(ReplyRejected):
    """The platform or the channel does not allow this; str() says why in plain words."""


async def moderate(core: Core, message_id: int, action: str, user_id: int, reason: str = "") -> None:
    async with core.engine.connect() as conn:
        row = (await conn.execute(sa.select(message_t.c.external_id, message_t.c.public, message_t.c.channel_id,
                                            conversation_t.c.id.label("conv_id"), conversation_t.c.team_id)
                                  .join(conversation_t, conversation_t.c.id == message_t.c.conversation_id)
                                  .where(message_t.c.id == message_id))).first()
    if row is None or row.external_id is None:
        raise ModerationRejected("This item is not on the platform (yet).")
    channel = await core.channels.get(row.channel_id)
    if channel is None or action not in channel.connector.capabilities.moderation or action not in RESULT:
        raise ModerationRejected(f"This channel cannot {action} items.")
    if not row.public:
        raise ModerationRejected("Only public items can be moderated.")
    try:
        await channel.connector.moderate(action, row.external_id)
    except SendError as exc:
        raise ModerationRejected(f"The platform refused to {action} it: {exc}") from exc
    async with core.engine.begin() as conn:
        await conn.execute(message_t.update().where(message_t.c.id == message_id).values(**RESULT[action]))
        await log_event(conn, row.conv_id, "moderated", user_id=user_id,
                        detail={"action": action, "message_id": message_id, "reason": reason})
    core.hub.publish({"type": "conversation", "conversation_id": row.conv_id, "team_id": row.team_id})
