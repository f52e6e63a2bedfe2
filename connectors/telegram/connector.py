"""Telegram Bot API: a bot receives private chats, groups and channel posts, and answers in them."""

from __future__ import annotations

import hmac
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from socialcrm.connector import (
    Capabilities,
    Connector,
    HandshakeResponse,
    InvalidSignature,
    NormalizedEvent,
    OutboundReply,
    PermanentError,
    Sent,
    TransientError,
    WebhookRequest,
)

from . import api
from .normalize import build_time, parse_body, parse_update, parse_updates

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BOT_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
MESSAGE_ID = re.compile(r"(-?[0-9]+):([0-9]+)")


class TelegramSettings(BaseModel):
    # A validation error must never echo a token back (pydantic puts the input in its message).
    model_config = ConfigDict(hide_input_in_errors=True)

    bot_token: SecretStr = Field(description="The token @BotFather gave the bot: <bot id>:<secret>")
    secret_token: SecretStr = Field(description="Sent by Telegram in every webhook request "
                                                "(1-256 of A-Z a-z 0-9 _ -)")
    api_base_url: str = Field("https://api.telegram.org", description="The Bot API server")

    @field_validator("bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr) -> SecretStr:
        if not BOT_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must be the bot id, a colon, then the secret part, as @BotFather shows it")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret_token_shape(cls, value: SecretStr) -> SecretStr:
        if not SECRET_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters, only A-Z, a-z, 0-9, _ and -")
        return value


class TelegramConnector(Connector):
    """A Telegram bot: private chats, groups and supergroups, channel posts it administers."""

    key = "telegram"
    display_name = "Telegram"
    Settings = TelegramSettings
    capabilities = Capabilities(
        webhook=True,                  # setWebhook, secret_token header
        poll=True,                     # getUpdates; exclusive with a webhook (409 while one is set)
        public_replies=True,           # in groups, supergroups and channels the bot may write in
        private_replies=True,          # in a private chat the customer started
        private_reply_to_public=False,  # a bot cannot open a private chat with a group member
        max_length_public=4096,        # code points after entity parsing; see text_length
        max_length_private=4096,
        reply_window=None,             # a bot may answer at any time until the customer blocks it
        edits=True,                    # edited_message / edited_channel_post
        deletes=False,                 # bots are never told about deletions
        attachments=False,             # replies are text only
        send_rate_per_second=30,       # "about 30 messages per second" per bot (Bot FAQ)
    )
    settings: TelegramSettings

    def account_id(self) -> str:
        """The bot's user id: the part of the token before the colon."""
        return self.settings.bot_token.get_secret_value().split(":", 1)[0]

    def text_length(self, text: str, public: bool = True) -> int:
        """Telegram's 4096 counts characters (code points), not UTF-16 units or bytes (README)."""
        return len(text)

    # -- webhooks -------------------------------------------------------------------------
    def handshake(self, req: WebhookRequest) -> HandshakeResponse | None:
        """Telegram has no verification request: the webhook is registered with setWebhook."""
        return None

    def verify(self, req: WebhookRequest) -> None:
        """No signature: Telegram sends our secret_token back in a header; compared in constant time."""
        given = req.headers.get(SECRET_HEADER)
        if given is None:
            raise InvalidSignature(f"missing {SECRET_HEADER} header")
        expected = self.settings.secret_token.get_secret_value()
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
            raise InvalidSignature(f"{SECRET_HEADER} does not match the channel's secret_token")

    def parse(self, req: WebhookRequest) -> list[NormalizedEvent]:
        return parse_update(parse_body(req.body), self.account_id())

    # -- Bot API --------------------------------------------------------------------------
    async def poll(self, cursor: str | None) -> tuple[list[NormalizedEvent], str | None]:
        """getUpdates from `cursor` (the last update_id + 1), which confirms everything before it."""
        result = await self._call(api.GET_UPDATES, api.updates_payload(_offset(cursor)))
        if not isinstance(result, list):
            raise TransientError(f"{api.PLATFORM} answered getUpdates without a list of updates")
        events, highest = parse_updates(result, self.account_id())
        return events, str(highest + 1) if highest is not None else cursor

    async def send(self, reply: OutboundReply) -> Sent:
        if reply.mode != "reply":
            raise PermanentError(f"{self.display_name} has no {reply.mode.replace('_', ' ')}s; answer in the chat")
        chat_id = _chat_id(reply.thread_external_id)
        reply_to = _message_ref(reply.in_reply_to_external_id) if reply.in_reply_to_external_id else None
        return _sent(await self._call(api.SEND_MESSAGE, api.reply_payload(chat_id, reply.text, reply_to)))

    async def check(self) -> None:
        """getMe: AuthFailed when the token is wrong or revoked."""
        await self._call(api.GET_ME)

    async def set_webhook(self, url: str) -> None:
        """Point Telegram at our webhook URL, with the secret_token and the update types we handle."""
        secret = self.settings.secret_token.get_secret_value()
        await self._call(api.SET_WEBHOOK, api.webhook_payload(url, secret))

    async def webhook_info(self) -> dict[str, Any]:
        """getWebhookInfo as Telegram answers it (url, pending_update_count, last_error_message...)."""
        info = await self._call(api.GET_WEBHOOK_INFO)
        if not isinstance(info, dict):
            raise TransientError(f"{api.PLATFORM} answered getWebhookInfo without a WebhookInfo object")
        return info

    async def _call(self, method: str, payload: dict[str, Any] | None = None) -> Any:
        token = self.settings.bot_token.get_secret_value()
        return await api.call(self.http, self.settings.api_base_url, token, method, payload)


def _offset(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return int(cursor)
    except ValueError:
        raise PermanentError(f"the stored poll cursor {cursor!r:.40} is not a Telegram update id") from None


def _chat_id(thread: str) -> int:
    try:
        return int(thread)
    except ValueError:
        raise PermanentError(f"{thread!r:.40} is not a Telegram chat id") from None


def _message_ref(external_id: str) -> tuple[int, int]:
    """"<chat_id>:<message_id>" -> both numbers."""
    match = MESSAGE_ID.fullmatch(external_id)
    if match is None:
        raise PermanentError(f"{external_id!r:.60} is not a Telegram message to reply to")
    return int(match[1]), int(match[2])


def _sent(message: Any) -> Sent:
    """The sent Message. Unreadable but accepted: not retried, since a retry would post it twice."""
    chat = message.get("chat") if isinstance(message, dict) else None
    if isinstance(chat, dict) and all(type(v) is int for v in (chat.get("id"), message.get("message_id"),
                                                              message.get("date"))):
        return Sent(f"{chat['id']}:{message['message_id']}", build_time(message["date"]))
    raise PermanentError(f"{api.PLATFORM} accepted the reply but its answer could not be read; "
                         "check the chat before sending it again")
