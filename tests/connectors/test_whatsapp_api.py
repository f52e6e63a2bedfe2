"""WhatsApp Cloud API calls through respx: the exact requests sent, every error code mapped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from pydantic import ValidationError

from connectors.whatsapp import WhatsAppConnector
from socialcrm.connector import (
    AuthFailed,
    OutboundReply,
    PermanentError,
    RateLimited,
    SendError,
    TransientError,
)

BASE = "https://graph.test"
NUMBER = "110200300400500"
APP_SECRET, VERIFY_TOKEN, ACCESS_TOKEN = "wa-app-secret-5c1e", "wa-verify-token-77d", "EAAwa-access-token-0b9"
MESSAGES = f"/v26.0/{NUMBER}/messages"
TEMPLATES = [{"name": "leveranse_forsinket", "language": "nb", "parameters": 2},
             {"name": "hello_again", "language": "sv", "parameters": 0}]
SETTINGS = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "access_token": ACCESS_TOKEN,
            "phone_number_id": NUMBER, "api_base_url": BASE, "templates": json.dumps(TEMPLATES)}
CUSTOMER = "4791234567"
QUOTED = "wamid.HBgKNDc5MTIzNDU2NxUCABIYFjNFQjAFQUJDMTIzNDU2Nzg5MEFCQwA="
SENT_ID = "wamid.HBgKNDc5MTIzNDU2NxUCABEYEjdCNDQwMUFCQ0RFRjAxMjM0AA=="
OK = {"messaging_product": "whatsapp", "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
      "messages": [{"id": SENT_ID}]}

REPLY = OutboundReply(text="Hei Ingrid! Pakken kommer i morgen før kl. 12.", public=False,
                      thread_external_id=CUSTOMER, recipient_external_id=CUSTOMER,
                      in_reply_to_external_id=QUOTED, idempotency_key="socialcrm-outbox-7")
TEMPLATE = OutboundReply(text="", public=False, thread_external_id=CUSTOMER, recipient_external_id=CUSTOMER,
                         mode="template", template={"name": "leveranse_forsinket", "language": "nb",
                                                    "parameters": ["Ingrid", "48213"]})


@pytest.fixture
async def connector():
    async with httpx.AsyncClient() as http:
        yield WhatsAppConnector.from_settings(SETTINGS, http)


@pytest.fixture
def graph():
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


def sent_json(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


# -- sending ------------------------------------------------------------------------------

async def test_text_reply_quotes_the_customers_message(connector, graph) -> None:
    route = graph.post(MESSAGES).respond(200, json=OK)
    before = datetime.now(UTC)
    sent = await connector.send(REPLY)
    assert sent.external_id == SENT_ID and before <= sent.sent_at <= datetime.now(UTC)
    request = route.calls.last.request
    assert sent_json(route) == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": "text",
        "text": {"body": "Hei Ingrid! Pakken kommer i morgen før kl. 12."}, "context": {"message_id": QUOTED},
    }
    assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert "access_token" not in str(request.url)  # the token never goes into a URL


async def test_a_reply_quoting_nothing_has_no_context(connector, graph) -> None:
    route = graph.post(MESSAGES).respond(200, json=OK)
    await connector.send(OutboundReply(text="Hei!", public=False, thread_external_id=CUSTOMER))
    assert "context" not in sent_json(route) and sent_json(route)["to"] == CUSTOMER


async def test_a_username_customer_is_addressed_by_user_id(connector, graph) -> None:
    route = graph.post(MESSAGES).respond(200, json={"messages": [{"id": SENT_ID}]})
    await connector.send(OutboundReply(text="Hei Kari", public=False, thread_external_id="NO.1502576394655843"))
    body = sent_json(route)
    assert body["recipient"] == "NO.1502576394655843" and "to" not in body


async def test_template_outside_the_window(connector, graph) -> None:
    route = graph.post(MESSAGES).respond(200, json=OK)
    sent = await connector.send(TEMPLATE)
    assert sent.external_id == SENT_ID
    assert sent_json(route) == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": "template",
        "template": {"name": "leveranse_forsinket", "language": {"code": "nb"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ingrid"}, {"type": "text", "text": "48213"}]}]},
    }


async def test_a_template_without_parameters_has_no_components(connector, graph) -> None:
    route = graph.post(MESSAGES).respond(200, json=OK)
    reply = OutboundReply(text="", public=False, thread_external_id=CUSTOMER, mode="template",
                          template={"name": "hello_again", "language": "sv", "parameters": []})
    await connector.send(reply)
    assert sent_json(route)["template"] == {"name": "hello_again", "language": {"code": "sv"}}


@pytest.mark.parametrize(("template", "words"), [
    ({"name": "leveranse_forsinket", "language": "sv", "parameters": ["a", "b"]}, "not in this channel's approved"),
    ({"name": "promo", "language": "nb", "parameters": []}, "not in this channel's approved"),
    ({"name": "leveranse_forsinket", "language": "nb", "parameters": ["Ingrid"]}, "takes 2 parameters, not 1"),
    ({"name": "leveranse_forsinket", "language": "nb", "parameters": ["Ingrid", ""]}, "non-empty texts"),
    (None, "not in this channel's approved"),
])
async def test_a_template_not_configured_is_refused_before_sending(connector, graph, template, words) -> None:
    route = graph.post(MESSAGES).respond(200, json=OK)
    reply = OutboundReply(text="", public=False, thread_external_id=CUSTOMER, mode="template", template=template)
    with pytest.raises(PermanentError, match=words):
        await connector.send(reply)
    assert not route.called


@pytest.mark.parametrize("reply", [
    OutboundReply(text="x", public=True, thread_external_id=CUSTOMER),
    OutboundReply(text="x", public=False, thread_external_id=CUSTOMER, mode="private_reply"),
])
async def test_there_is_nothing_public_to_answer(connector, graph, reply) -> None:
    route = graph.post(MESSAGES).respond(200, json=OK)
    with pytest.raises(PermanentError):
        await connector.send(reply)
    assert not route.called


@pytest.mark.parametrize("answer", [{"messages": []}, {"messaging_product": "whatsapp"}, [], "ok"])
async def test_an_answer_without_message_id_is_not_retried(connector, graph, answer) -> None:
    """No idempotency key on the Cloud API: a retry could send the message twice."""
    graph.post(MESSAGES).respond(200, json=answer)
    with pytest.raises(PermanentError, match="may have been delivered"):
        await connector.send(REPLY)


async def test_a_success_without_json_is_not_retried_either(connector, graph) -> None:
    graph.post(MESSAGES).respond(200, text="OK")
    with pytest.raises(PermanentError, match="may have been delivered"):
        await connector.send(REPLY)


# -- errors, by code ----------------------------------------------------------------------

def graph_error(code: int, message: str = "(#{code}) error") -> dict:
    """Meta's error body; the message text differs per language and never decides anything."""
    return {"error": {"message": message.format(code=code), "type": "OAuthException", "code": code,
                      "error_data": {"messaging_product": "whatsapp", "details": "details"},
                      "fbtrace_id": "AZfbtrace01"}}


ERRORS = [
    (401, 190, AuthFailed),         # access token expired or revoked
    (400, 4, RateLimited),          # app call rate
    (400, 80007, RateLimited),      # WhatsApp Business Account rate limit
    (400, 130429, RateLimited),     # Cloud API throughput
    (400, 131056, RateLimited),     # pair rate: same customer too often
    (400, 131047, PermanentError),  # re-engagement: outside the 24-hour window
    (400, 131026, PermanentError),  # undeliverable
    (403, 10, PermanentError),      # permission denied
    (403, 200, PermanentError),     # permissions
    (403, 230, PermanentError),
    (400, 100, PermanentError),     # invalid parameter
    (400, 1, TransientError),       # API unknown
    (503, 2, TransientError),       # API service (temporary downtime)
    (500, 131000, TransientError),  # something went wrong
    (400, 131000, TransientError),  # ... by code, whatever the status
]


@pytest.mark.parametrize(("status", "code", "error"), ERRORS, ids=lambda v: str(v) if isinstance(v, int) else "")
async def test_every_error_code_maps_to_its_class(connector, graph, status, code, error) -> None:
    graph.post(MESSAGES).respond(status, json=graph_error(code))
    with pytest.raises(SendError) as info:
        await connector.send(REPLY)
    assert type(info.value) is error and info.value.code == code
    words = str(info.value)
    assert words and "\n" not in words and ACCESS_TOKEN not in words and APP_SECRET not in words


async def test_the_message_text_never_decides(connector, graph) -> None:
    graph.post(MESSAGES).respond(400, json=graph_error(100, "(#131047) Re-engagement message rate limit token"))
    with pytest.raises(PermanentError) as info:
        await connector.send(REPLY)
    assert info.value.code == 100


@pytest.mark.parametrize(("code", "words"), [
    (131047, "More than 24 hours have passed since the customer last wrote: only an approved template can be sent."),
    (131026, ("WhatsApp could not deliver the message (the number may not use WhatsApp, "
              "or the customer's app must be updated or has not accepted the terms).")),
])
async def test_permanent_whatsapp_errors_are_plain_words(connector, graph, code, words) -> None:
    graph.post(MESSAGES).respond(400, json=graph_error(code))
    with pytest.raises(PermanentError) as info:
        await connector.send(REPLY)
    assert str(info.value) == words


async def test_pair_rate_limit_waits_one_refill(connector, graph) -> None:
    """1 message every 6 s per customer; the core holds the whole channel, so no longer."""
    graph.post(MESSAGES).respond(400, json=graph_error(131056))
    with pytest.raises(RateLimited) as info:
        await connector.send(REPLY)
    assert info.value.retry_after == 6.0


async def test_throughput_limit_waits_as_the_usage_header_says(connector, graph) -> None:
    usage = {"201020304050607": [{"type": "whatsapp", "call_count": 100, "estimated_time_to_regain_access": 3}]}
    graph.post(MESSAGES).respond(400, json=graph_error(130429), headers={"X-Business-Use-Case-Usage": json.dumps(usage)})
    with pytest.raises(RateLimited) as info:
        await connector.send(REPLY)
    assert info.value.retry_after == 180.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_without_a_body_are_transient(connector, graph, status) -> None:
    graph.post(MESSAGES).respond(status, text="<html>Bad Gateway</html>")
    with pytest.raises(TransientError):
        await connector.send(REPLY)


async def test_http_429_without_a_code_is_rate_limited(connector, graph) -> None:
    graph.post(MESSAGES).respond(429)
    with pytest.raises(RateLimited):
        await connector.send(REPLY)


TRANSPORT_ERRORS = [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.PoolTimeout, httpx.ConnectError,
                    httpx.ReadError, httpx.RemoteProtocolError]
CALLS = {"send": (lambda c: c.send(REPLY), "POST", MESSAGES),
         "template": (lambda c: c.send(TEMPLATE), "POST", MESSAGES),
         "check": (lambda c: c.check(), "GET", f"/v26.0/{NUMBER}")}


@pytest.mark.parametrize("exc", TRANSPORT_ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", sorted(CALLS))
async def test_timeouts_and_dropped_connections_are_transient(connector, graph, call, exc) -> None:
    invoke, method, path = CALLS[call]
    graph.route(method=method, path=path).mock(side_effect=exc)
    with pytest.raises(TransientError) as info:
        await invoke(connector)
    assert isinstance(info.value.__cause__, exc) and ACCESS_TOKEN not in str(info.value)


# -- check, settings, capabilities ----------------------------------------------------------

async def test_check_reads_the_phone_number_with_the_token(connector, graph) -> None:
    route = graph.get(f"/v26.0/{NUMBER}").respond(200, json={
        "verified_name": "Nordlys Sko AS", "display_phone_number": "+47 22 33 44 55", "id": NUMBER,
        "quality_rating": "GREEN"})
    await connector.check()
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"


async def test_check_with_a_revoked_token_is_auth_failed(connector, graph) -> None:
    graph.get(f"/v26.0/{NUMBER}").respond(401, json=graph_error(190, "Error validating access token"))
    with pytest.raises(AuthFailed):
        await connector.check()


def test_settings_defaults_and_templates_from_json() -> None:
    c = WhatsAppConnector.from_settings(SETTINGS, httpx.AsyncClient())
    assert (c.settings.api_version, c.account_id()) == ("v26.0", NUMBER)
    assert c.allowed_templates() == TEMPLATES
    as_list = WhatsAppConnector.from_settings(SETTINGS | {"templates": TEMPLATES[:1], "business_account_id": ""},
                                              httpx.AsyncClient())
    assert as_list.allowed_templates() == TEMPLATES[:1] and as_list.settings.business_account_id is None
    assert WhatsAppConnector.from_settings(SETTINGS | {"templates": " "}, httpx.AsyncClient()).allowed_templates() == []


@pytest.mark.parametrize("change", [
    {"templates": "[{'name': 'x'}"}, {"templates": [{"name": "x", "language": "nb", "parameters": -1}]},
    {"phone_number_id": "../me"}, {"api_version": "latest"}, {"access_token": ""},
])
def test_bad_settings_are_refused_without_echoing_secrets(change: dict) -> None:
    with pytest.raises(ValidationError) as info:
        WhatsAppConnector.from_settings(SETTINGS | change, httpx.AsyncClient())
    assert ACCESS_TOKEN not in str(info.value) and APP_SECRET not in str(info.value)


def test_secrets_do_not_appear_in_reprs() -> None:
    c = WhatsAppConnector.from_settings(SETTINGS, httpx.AsyncClient())
    shown = repr(c.settings) + str(c.settings) + repr(c.settings.model_dump())
    for secret in (APP_SECRET, VERIFY_TOKEN, ACCESS_TOKEN):
        assert secret not in shown


def test_capabilities() -> None:
    caps = WhatsAppConnector.capabilities
    assert (caps.webhook, caps.poll, caps.public_replies, caps.private_replies) == (True, False, False, True)
    assert (caps.max_length_private, caps.reply_window, caps.templates_outside_window) == (4096, timedelta(hours=24), True)
    assert caps.human_agent_window is None and caps.moderation == frozenset()
