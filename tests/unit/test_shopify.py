"""Shopify webhooks (mappings/shopify.yaml): the documented HMAC vector, the event table, the
natural dedup keys, and why the unsigned headers (topic, event id) cannot forge or re-key an event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from dmhub_adapter.errors import Unauthorized
from dmhub_adapter.mapping.engine import MessageResult, map_payload
from dmhub_adapter.sources.base import Account, Source
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter.webhook import WebhookRequest

# research/new-sources.md §3.5: verified with Python hmac, Node crypto and openssl.
VECTOR_SECRET = "shpss_test_client_secret_0123456789"
VECTOR_BODY = (
    '{"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/820982911946154508","email":'
    '"jon@example.com","phone":"+15555550123","created_at":"2025-01-01T08:00:00-05:00","processed_at":'
    '"2025-01-01T08:00:00-05:00","currency":"USD","total_price":"199.00","financial_status":"paid","name":'
    '"#9999","customer":{"id":115310627314723954,"email":"jon@example.com","phone":"+15555550123"},'
    '"note":"café ☕"}'
).encode()
VECTOR_HMAC = "gOF0hT5NMaTA3BEZVBZ/Sris7DqzsSlCOQc+ahslheg="
SENT = 1735736400 + 120  # two minutes after the order's created_at
SECRET = {"webhookSecret": VECTOR_SECRET}


def _source() -> Source:
    found = source_for("shopify")
    assert found is not None
    return found


def _hmac(body: bytes, secret: str = VECTOR_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _request(body: bytes, topic: str, *, signature: str | None = None, event_id: str = "evt-1",
             received_at: float = SENT) -> WebhookRequest:
    headers = {"x-shopify-hmac-sha256": signature if signature is not None else _hmac(body),
               "x-shopify-topic": topic, "x-shopify-event-id": event_id, "x-shopify-webhook-id": f"wh-{event_id}",
               "x-shopify-shop-domain": "demo.myshopify.com", "content-type": "application/json"}
    return WebhookRequest(method="POST", source="shopify", account="demo", body=body, headers=headers,
                          received_at=received_at)


def _map(request: WebhookRequest, secret: dict[str, Any] | None = None) -> MessageResult:
    source = _source()
    inbound = source.receive(request, Account("shopify", "demo", source.mapping, secret or SECRET))
    [result] = map_payload(source.mapping, inbound.messages)
    return result


def test_the_documented_vector_verifies_and_maps_as_a_paid_order() -> None:
    assert len(VECTOR_BODY) == 408 and _hmac(VECTOR_BODY) == VECTOR_HMAC
    result = _map(_request(VECTOR_BODY, "orders/paid", signature=VECTOR_HMAC))
    [mapped] = result.events
    assert mapped.identity is not None
    assert (mapped.identity.type, mapped.identity.value) == ("email", "jon@example.com")
    event = mapped.event.model_dump(exclude_none=True)
    assert event == {"event": "c_shopify_order_paid", "date": "2025-01-01T13:00:00Z", "source": "Shopify",
                     "externalId": "order|820982911946154508|paid", "order_id": "820982911946154508",
                     "order_name": "#9999", "amount": "199.00", "currency": "USD", "financial_status": "paid"}


@pytest.mark.parametrize("change", ["one_byte", "re_serialised", "other_secret", "missing"])
def test_altered_bodies_and_wrong_signatures_are_refused(change: str) -> None:
    body, signature = VECTOR_BODY, VECTOR_HMAC
    if change == "one_byte":
        body = body.replace(b"199.00", b"199.01")
    elif change == "re_serialised":
        body = json.dumps(json.loads(body)).encode()
    elif change == "other_secret":
        signature = _hmac(body, "shpss_other")
    else:
        signature = ""
    with pytest.raises(Unauthorized):
        _map(_request(body, "orders/paid", signature=signature))


def test_the_previous_secret_is_accepted_during_a_rotation() -> None:
    rotated = {"webhookSecret": "new", "previousWebhookSecret": VECTOR_SECRET}
    result = _map(_request(VECTOR_BODY, "orders/paid"), rotated)
    assert result.status == "mapped"


def test_a_body_older_than_three_days_is_refused() -> None:
    with pytest.raises(Unauthorized, match="stale"):
        _map(_request(VECTOR_BODY, "orders/paid", received_at=SENT + 3 * 86400))


def test_fresh_event_ids_do_not_make_new_events() -> None:
    keys = {_map(_request(VECTOR_BODY, "orders/paid", event_id=f"evt-{n}")).events[0].event.externalId
            for n in range(3)}
    assert keys == {"order|820982911946154508|paid"}


def test_the_unsigned_topic_only_chooses_among_facts_the_body_proves() -> None:
    created = _map(_request(VECTOR_BODY, "orders/create")).events[0].event
    assert (created.event, created.externalId) == ("c_shopify_order_created", "order|820982911946154508|created")
    unpaid = VECTOR_BODY.replace(b'"financial_status":"paid"', b'"financial_status":"pending"')
    assert _map(_request(unpaid, "orders/paid")).status == "unmapped"
    # an order body re-sent as another topic does not fit that topic's shape
    for topic in ("refunds/create", "customers/create", "orders/delete"):
        assert _map(_request(VECTOR_BODY, topic)).status == "unmapped"


def test_identity_falls_back_from_email_to_phone_to_customer_id() -> None:
    order = json.loads(VECTOR_BODY)
    order.update(email=None, customer={"id": 115310627314723954, "email": None, "phone": "+15555550123"})
    order["phone"] = None
    identity = _map(_request(json.dumps(order).encode(), "orders/paid")).events[0].identity
    assert identity is not None and (identity.type, identity.value) == ("mobile", "+15555550123")
    order["customer"] = {"id": 115310627314723954, "email": None, "phone": None}
    identity = _map(_request(json.dumps(order).encode(), "orders/paid")).events[0].identity
    assert identity is not None and (identity.type, identity.value) == ("shopify-customer", "115310627314723954")


def test_refunds_and_customers() -> None:
    refund = {"id": 509562969, "order_id": 820982911946154508, "created_at": "2025-01-01T09:00:00-05:00",
              "note": "broken", "refund_line_items": [], "transactions": [
                  {"kind": "refund", "amount": "41.94", "currency": "USD"},
                  {"kind": "refund", "amount": "10.00", "currency": "USD"}]}
    result = _map(_request(json.dumps(refund).encode(), "refunds/create"))
    [mapped] = result.events
    assert mapped.event.externalId == "refund|509562969"
    assert mapped.identity is not None and (mapped.identity.type, mapped.identity.create) == ("shopify-order", False)
    assert mapped.event.model_dump(exclude_none=True)["amount"] == "51.94"
    customer = {"id": 207119551, "email": " Bob@Example.com", "phone": None, "first_name": "Bob",
                "created_at": "2025-01-01T08:30:00-05:00", "updated_at": "2025-01-01T08:30:00-05:00",
                "state": "disabled", "verified_email": True}
    [mapped] = _map(_request(json.dumps(customer).encode(), "customers/create")).events
    assert (mapped.event.event, mapped.event.externalId) == ("c_shopify_customer_created", "customer|207119551|created")
    assert mapped.identity is not None and (mapped.identity.type, mapped.identity.value) == ("email", "bob@example.com")
