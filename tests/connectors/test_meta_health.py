"""`platform_health()` of the Meta connectors through respx: debug_token (expiry, validity,
scopes) and subscribed_apps (is our app getting this Page's / WABA's webhooks), errors mapped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from connectors.facebook import FacebookConnector
from connectors.instagram import InstagramConnector
from connectors.whatsapp import WhatsAppConnector
from socialcrm.connector import AuthFailed, Connector, RateLimited, TransientError

BASE, V = "https://graph.test", "/v26.0"
TOKEN = "EAAGm0PX4ZCpsBAPageToken"
PAGE, IG, PHONE, WABA, APP = "104650212345678", "17841405822304914", "106540352242922", "102289599326934", "424242"
EXPIRES = 1_800_000_000
ERROR_190 = {"error": {"message": "Error validating access token: Session has expired on Tuesday.",
                       "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "Abc"}}


def debug_token(**overrides: object) -> dict[str, object]:
    data = {"app_id": APP, "type": "PAGE", "application": "socialcrm", "expires_at": EXPIRES, "is_valid": True,
            "issued_at": EXPIRES - 5_000_000, "scopes": ["pages_messaging", "pages_manage_engagement"],
            "user_id": "10000123"}
    return {"data": {**data, **overrides}}


PAGE_APPS = {"data": [{"category": "Business", "link": "https://socialcrm.test", "name": "socialcrm", "id": APP,
                       "subscribed_fields": ["messages", "feed"]}]}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def facebook(http: httpx.AsyncClient) -> FacebookConnector:
    return FacebookConnector.from_settings({"page_id": PAGE, "app_secret": "s", "access_token": TOKEN,
                                            "api_base_url": BASE}, http)


@respx.mock
async def test_facebook_reports_expiry_scopes_and_subscription(http: httpx.AsyncClient) -> None:
    token = respx.get(f"{BASE}{V}/debug_token").mock(return_value=httpx.Response(200, json=debug_token()))
    apps = respx.get(f"{BASE}{V}/{PAGE}/subscribed_apps").mock(return_value=httpx.Response(200, json=PAGE_APPS))
    found = await facebook(http).platform_health()
    assert found["token_valid"] is True
    assert found["token_expires_at"] == datetime.fromtimestamp(EXPIRES, UTC)
    assert found["scopes"] == ["pages_messaging", "pages_manage_engagement"]
    assert found["subscribed"] is True and found["subscribed_fields"] == ["feed", "messages"]
    sent = token.calls.last.request
    assert sent.url.params["input_token"] == TOKEN and sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert apps.called


@respx.mock
async def test_zero_expiry_means_never_and_another_app_is_not_ours(http: httpx.AsyncClient) -> None:
    respx.get(f"{BASE}{V}/debug_token").mock(return_value=httpx.Response(200, json=debug_token(expires_at=0)))
    other = {"data": [{"name": "Some other tool", "id": "999", "subscribed_fields": ["feed"]}]}
    respx.get(f"{BASE}{V}/{PAGE}/subscribed_apps").mock(return_value=httpx.Response(200, json=other))
    found = await facebook(http).platform_health()
    assert found["token_expires_at"] is None
    assert found["subscribed"] is False and found["subscribed_fields"] == []


@respx.mock
async def test_no_app_subscribed_at_all(http: httpx.AsyncClient) -> None:
    respx.get(f"{BASE}{V}/debug_token").mock(return_value=httpx.Response(200, json=debug_token()))
    respx.get(f"{BASE}{V}/{PAGE}/subscribed_apps").mock(return_value=httpx.Response(200, json={"data": []}))
    assert (await facebook(http).platform_health())["subscribed"] is False


@respx.mock
async def test_an_invalid_token_is_reported_without_asking_for_the_subscription(http: httpx.AsyncClient) -> None:
    respx.get(f"{BASE}{V}/debug_token").mock(return_value=httpx.Response(200, json=debug_token(is_valid=False)))
    apps = respx.get(f"{BASE}{V}/{PAGE}/subscribed_apps")
    found = await facebook(http).platform_health()
    assert found["token_valid"] is False and found["subscribed"] is None
    assert not apps.called


@respx.mock
async def test_graph_errors_are_the_usual_tree(http: httpx.AsyncClient) -> None:
    route = respx.get(f"{BASE}{V}/debug_token")
    route.mock(return_value=httpx.Response(400, json=ERROR_190))
    with pytest.raises(AuthFailed) as caught:
        await facebook(http).platform_health()
    assert caught.value.code == 190
    route.mock(return_value=httpx.Response(400, json={"error": {"message": "limit", "code": 4}}))
    with pytest.raises(RateLimited):
        await facebook(http).platform_health()
    route.mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(TransientError):
        await facebook(http).platform_health()


@respx.mock
async def test_instagram_asks_the_linked_page_only_when_configured(http: httpx.AsyncClient) -> None:
    respx.get(f"{BASE}{V}/debug_token").mock(return_value=httpx.Response(200, json=debug_token()))
    apps = respx.get(f"{BASE}{V}/{PAGE}/subscribed_apps").mock(return_value=httpx.Response(200, json=PAGE_APPS))
    settings = {"app_secret": "s", "verify_token": "v", "access_token": TOKEN, "ig_user_id": IG,
                "api_base_url": BASE}
    alone = await InstagramConnector.from_settings(settings, http).platform_health()
    assert alone["token_valid"] is True and alone["subscribed"] is None and not apps.called
    linked = await InstagramConnector.from_settings({**settings, "page_id": PAGE}, http).platform_health()
    assert linked["subscribed"] is True and apps.call_count == 1


@respx.mock
async def test_whatsapp_asks_the_business_account(http: httpx.AsyncClient) -> None:
    respx.get(f"{BASE}{V}/debug_token").mock(return_value=httpx.Response(200, json=debug_token(expires_at=0)))
    waba_apps = {"data": [{"whatsapp_business_api_data": {"id": APP, "link": "https://x.test", "name": "socialcrm"}},
                          {"whatsapp_business_api_data": {"id": "555", "name": "Other"}}]}
    apps = respx.get(f"{BASE}{V}/{WABA}/subscribed_apps").mock(return_value=httpx.Response(200, json=waba_apps))
    settings = {"app_secret": "s", "verify_token": "v", "access_token": TOKEN, "phone_number_id": PHONE,
                "api_base_url": BASE}
    without = await WhatsAppConnector.from_settings(settings, http).platform_health()
    assert without["subscribed"] is None and not apps.called
    found = await WhatsAppConnector.from_settings({**settings, "business_account_id": WABA}, http).platform_health()
    assert found["subscribed"] is True and found["token_expires_at"] is None
    respx.get(f"{BASE}{V}/{WABA}/subscribed_apps").mock(return_value=httpx.Response(200, json={"data": []}))
    gone = await WhatsAppConnector.from_settings({**settings, "business_account_id": WABA}, http).platform_health()
    assert gone["subscribed"] is False


async def test_the_contract_default_says_nothing(http: httpx.AsyncClient) -> None:
    class Quiet(Connector):
        key, display_name = "quiet", "Quiet"

    assert await Quiet(None, http).platform_health() == {}  # type: ignore[arg-type]
