"""One sweep over every built-in connector: it loads, keeps the contract's shape, and turns every
httpx transport failure into TransientError in send and poll (never a raw httpx exception)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx

from socialcrm.connector import Connector, OutboundReply
from socialcrm.errors import TransientError
from socialcrm.registry import Registry

BUILT_IN = ["bluesky", "facebook", "instagram", "mastodon", "simulator", "telegram", "whatsapp", "x"]
BASE = "http://platform.invalid"
SETTINGS = {
    "simulator": {"account_id": "brand", "webhook_secret": "s", "api_token": "t", "api_base_url": BASE},
    "facebook": {"page_id": "1", "app_secret": "s", "access_token": "t", "verify_token": "v", "api_base_url": BASE},
    "instagram": {"ig_user_id": "1", "app_secret": "s", "access_token": "t", "verify_token": "v", "api_base_url": BASE},
    "whatsapp": {"phone_number_id": "1", "app_secret": "s", "access_token": "t", "verify_token": "v",
                 "api_base_url": BASE, "templates": []},
    "x": {"user_id": "1", "consumer_secret": "s", "bearer_token": "b", "user_access_token": "u", "api_base_url": BASE},
    "telegram": {"bot_token": "123:abc", "secret_token": "secret", "api_base_url": BASE},
    "mastodon": {"access_token": "t", "account_id": "1", "api_base_url": BASE},
    "bluesky": {"identifier": "brand.example", "app_password": "p", "api_base_url": BASE},
}
TRANSPORT_ERRORS = [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.ReadTimeout("slow"),
                    httpx.ReadError("reset"), httpx.RemoteProtocolError("garbled"), httpx.PoolTimeout("busy")]
REGISTRY = Registry.from_entry_points()


def connector(key: str, http: httpx.AsyncClient) -> Connector:
    return REGISTRY.get(key).from_settings(SETTINGS[key], http)


#: Ids in each platform's own shape (a Telegram id is "<chat>:<message>", Bluesky's an at:// uri).
REPLY_TO = {"telegram": ("-1001", "-1001:3"),
            "bluesky": ("at://did:plc:a/app.bsky.feed.post/1", "at://did:plc:a/app.bsky.feed.post/3")}


def reply(key: str, public: bool) -> OutboundReply:
    thread, answered = REPLY_TO.get(key, ("1", "3"))
    return OutboundReply(text="Hei", public=public, thread_external_id=thread, recipient_external_id="2",
                         in_reply_to_external_id=answered, idempotency_key="k")


def test_every_built_in_connector_loads_under_its_key() -> None:
    assert REGISTRY.broken == {}
    assert REGISTRY.keys() == BUILT_IN


@pytest.mark.parametrize("key", BUILT_IN)
def test_declared_shape(key: str) -> None:
    cls = REGISTRY.get(key)
    caps = cls.capabilities
    assert cls.display_name and (caps.webhook or caps.poll)
    assert caps.public_replies or caps.private_replies
    assert caps.reply_window is None or caps.reply_window > timedelta(0)
    assert connector(key, httpx.AsyncClient()).account_id()   # routes one callback URL to its channel


@pytest.mark.parametrize("error", TRANSPORT_ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("key", BUILT_IN)
async def test_transport_failures_become_transient_errors(key: str, error: Exception) -> None:
    caps = REGISTRY.get(key).capabilities
    async with httpx.AsyncClient() as http, respx.mock(assert_all_called=False) as mock:
        mock.route().mock(side_effect=error)
        c = connector(key, http)
        with pytest.raises(TransientError) as sent:
            await c.send(reply(key, public=caps.public_replies))
        assert "secret" not in str(sent.value) and "abc" not in str(sent.value)
        if caps.poll:
            with pytest.raises(TransientError):
                await c.poll(None)
