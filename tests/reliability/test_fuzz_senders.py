"""Property tests for the newer senders (WeChat Pay, WeCom, Shopify, Svix headers, Youzan legacy):
whatever arrives is a 4xx WebhookError or an authentic, unchanged payload; nothing else escapes.
Signed-but-hostile inputs (random resources behind a valid WeChat Pay signature) reach the
decryption and must still be 4xx."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from dmhub_adapter.webhook import WebhookRequest
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.demo_keys import WECHATPAY_PRIVATE_KEY
from dmhub_adapter_tools.local.samples import build_sample
from tests import wechatpay_notify as wp
from tests.reliability.test_fuzz import FUZZ, NOW, edits, json_values, mutate, receive

ACCOUNTS = load_accounts()
WECHATPAY_SECRET = dict(ACCOUNTS.secret("wechatpay", "demo") or {})
WECOM_SECRET = dict(ACCOUNTS.secret("wecom", "demo") or {})
SHOPIFY_SECRET = dict(ACCOUNTS.secret("shopify", "demo") or {})
WECHATPAY = build_sample("wechatpay-paid", WECHATPAY_SECRET, now=NOW, out_trade_no="CRMFUZZ0001")
WECOM = build_sample("wecom-add-contact", WECOM_SECRET, now=NOW, external="wmFuzz0001")
SHOPIFY = build_sample("shopify-order-paid", SHOPIFY_SECRET, now=NOW, order_id=820_000_000_000_000_777)
_KEY = serialization.load_pem_private_key(WECHATPAY_PRIVATE_KEY.encode(), password=None)
assert isinstance(_KEY, rsa.RSAPrivateKey)
PRIVATE: rsa.RSAPrivateKey = _KEY


def _request(source: str, body: bytes, headers: dict[str, str], raw_query: str = "") -> WebhookRequest:
    from urllib.parse import parse_qsl

    return WebhookRequest(method="POST", source=source, account="demo", body=body, headers=headers,
                          query=dict(parse_qsl(raw_query, keep_blank_values=True)), raw_query=raw_query,
                          received_at=NOW)


@FUZZ
@given(changes=edits)
def test_mutated_wechatpay_body_is_never_accepted(changes: list[tuple[int, int]]) -> None:
    body = mutate(WECHATPAY.body, changes)
    inbound, _ = receive("wechatpay", _request("wechatpay", body, WECHATPAY.headers), WECHATPAY_SECRET)
    assert inbound is None or body == WECHATPAY.body


@FUZZ
@given(name=st.sampled_from(["wechatpay-serial", "wechatpay-signature", "wechatpay-timestamp", "wechatpay-nonce"]),
       value=st.text(max_size=400))
def test_mutated_wechatpay_headers_are_never_accepted(name: str, value: str) -> None:
    headers = {**WECHATPAY.headers, name: value}
    inbound, _ = receive("wechatpay", _request("wechatpay", WECHATPAY.body, headers), WECHATPAY_SECRET)
    assert inbound is None or value == WECHATPAY.headers[name]


#: resources shaped like WeChat Pay's, so the decryption itself is what gets the hostile values
gcm_resources = st.fixed_dictionaries(
    {"algorithm": st.sampled_from(["AEAD_AES_256_GCM"]) | st.text(max_size=20),
     "ciphertext": st.binary(max_size=300).map(lambda b: __import__("base64").b64encode(b).decode()) | json_values,
     "nonce": st.text(max_size=20) | json_values},
    optional={"associated_data": st.sampled_from(["transaction", "refund", ""]) | json_values,
              "original_type": st.text(max_size=12)},
)


@FUZZ
@given(resource=gcm_resources | json_values, event_type=st.sampled_from(["TRANSACTION.SUCCESS", "REFUND.SUCCESS", "X"]))
def test_hostile_resources_behind_a_valid_signature_are_4xx(resource: Any, event_type: str) -> None:
    envelope = json.loads(WECHATPAY.body)
    envelope.update(event_type=event_type, resource=resource)
    body = json.dumps(envelope).encode()
    stamp, nonce = WECHATPAY.headers["wechatpay-timestamp"], WECHATPAY.headers["wechatpay-nonce"]
    headers = {**WECHATPAY.headers, "wechatpay-signature": wp.sign(PRIVATE, stamp, nonce, body)}
    inbound, error = receive("wechatpay", _request("wechatpay", body, headers), WECHATPAY_SECRET)
    assert inbound is not None or error is not None
    if inbound is not None:
        from dmhub_adapter.mapping.engine import map_payload
        from dmhub_adapter.sources.registry import source_for

        source = source_for("wechatpay")
        assert source is not None
        for result in map_payload(source.mapping, inbound.messages):
            assert result.status in ("mapped", "skipped", "unmapped")


@FUZZ
@given(changes=edits)
def test_mutated_wecom_push_is_accepted_only_when_its_message_is_unchanged(changes: list[tuple[int, int]]) -> None:
    body = mutate(WECOM.body, changes)
    inbound, _ = receive("wecom", _request("wecom", body, WECOM.headers, WECOM.raw_query), WECOM_SECRET)
    if inbound is not None:
        # only edits outside the signed Encrypt text (ToUserName, AgentID of the envelope)
        assert inbound.messages[0]["ExternalUserID"] == "wmFuzz0001"


@FUZZ
@given(changes=edits)
def test_mutated_wecom_query_is_never_accepted(changes: list[tuple[int, int]]) -> None:
    query = mutate(WECOM.raw_query.encode(), changes).decode("latin-1")
    inbound, _ = receive("wecom", _request("wecom", WECOM.body, WECOM.headers, query), WECOM_SECRET)
    if inbound is not None:
        from urllib.parse import parse_qsl

        assert dict(parse_qsl(query)).get("msg_signature", "").lower() == dict(parse_qsl(WECOM.raw_query))[
            "msg_signature"]


@FUZZ
@given(changes=edits)
def test_mutated_shopify_body_is_never_accepted(changes: list[tuple[int, int]]) -> None:
    body = mutate(SHOPIFY.body, changes)
    inbound, _ = receive("shopify", _request("shopify", body, SHOPIFY.headers), SHOPIFY_SECRET)
    assert inbound is None or body == SHOPIFY.body


@FUZZ
@given(body=st.binary(max_size=2048))
def test_random_bodies_with_valid_headers_are_refused(body: bytes) -> None:
    for name, sample, secret in (("wechatpay", WECHATPAY, WECHATPAY_SECRET), ("wecom", WECOM, WECOM_SECRET),
                                 ("shopify", SHOPIFY, SHOPIFY_SECRET)):
        inbound, error = receive(name, _request(name, body, sample.headers, sample.raw_query), secret)
        assert inbound is None and error is not None


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(["sign", "msg", "id", "kdt_id", "client_id", "type"]), json_values,
                              max_size=6))
def test_youzan_bodies_without_event_sign_are_4xx(fields: dict[str, Any]) -> None:
    body = json.dumps(fields).encode()
    inbound, error = receive("youzan", _request("youzan", body, {"content-type": "application/json"}),
                             {"clientId": "cid123", "clientSecret": "csecret456"})
    assert inbound is None and error is not None


def test_the_sample_requests_are_accepted() -> None:
    # the properties above are about refusals; the unmutated requests must pass
    for name, sample, secret in (("wechatpay", WECHATPAY, WECHATPAY_SECRET), ("wecom", WECOM, WECOM_SECRET),
                                 ("shopify", SHOPIFY, SHOPIFY_SECRET)):
        inbound, error = receive(name, _request(name, sample.body, sample.headers, sample.raw_query), secret)
        assert error is None and inbound is not None, (name, error)
