"""WeChat Pay APIv3 notifications (mappings/wechatpay.yaml): the published worked vector, the
``wechatpayv3`` SDK as a second opinion on the test builder, the event table, account binding,
and every kind of bad input as a 4xx (bad key material 503) with nothing accepted."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dmhub_adapter.errors import BadRequest, Forbidden, Unauthorized, Unavailable, WebhookError
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.sources.base import Account, IngestOutcome, Source
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter.webhook import WebhookRequest
from tests import wechatpay_notify as wp

# research/new-sources.md §1.6: a TRANSACTION.SUCCESS notification verified with openssl,
# wechatpayv3 2.0.4 and Node crypto.
VECTOR_KEY = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnWRuM4hImSYn/YwZmQ0Q
OtVGE8Jj9T9qItnxBnE375XmTzp7QKeKBF7E1f6wgXaRT7TSMfzP+xkXVdBhsW/U
r1Y6AoRneBT+wPYjiqh0UIDWDf5up6s4sA9QuI3dWqblgwKyupV6NWfUiTOIMqh/
2ymrbWDx0lW6SAU/tsWniYlaUvKTrp36mLS95HMK0tSAVYdXqswiQigPvee1+KGc
I78aTxtSMaRp4Jc1ShI07YsFWsr/yKVNOXQF2K1Uz8tg2nY/T80xoVCGNFzGYS5i
0YmXUL3nByeqqbgYXYJ08ahLOQ0xtDjdeeSEhj/iIXrtYhEceGJKu9LLlrFbSqJY
awIDAQAB
-----END PUBLIC KEY-----
"""
VECTOR_SERIAL = "PUB_KEY_ID_0000000000000000000000000000000001"
VECTOR_HEADERS = {
    "wechatpay-serial": VECTOR_SERIAL,
    "wechatpay-timestamp": "1735689606",
    "wechatpay-nonce": "vDq2cF9m0pXr7sLk3NbZ8tYw1HgJ4eUa",
    "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
    "wechatpay-signature": (
        "MXOJEJaTV4zbdNu4jc2h+454UwIALWKK4rI1kGtw/m//z3F246s7SRUUDpL+/Z6ZA7Mst+lzClYYRxSLYv57/pTEdzZ22poAenzJTm"
        "qHAxzf1zXkMq4JGQPr2gry+IHEfi1X06sR/QmQ1f+QsxVbMLQzVcKkaBpughKTX9E1XG3H6o9APSa78YSoVXmnXxeVf4g36NDa4XhP"
        "BjmuamkUQw1zT175iJb3/5hafUVtZUEtpx2RQS83N+4hxQLCt+HAGXurEpDDRw8ELPmCwgVxG/Fe/ywRZf9hB62KzPhBPZWEHzX12X"
        "f3LG6Wn9++AY/YNMVf6RDSj8HUHJuqLZTGhg=="),
}
VECTOR_BODY = (
    '{"id":"0f3a2d7c-1b4e-5c6d-9e8f-a1b2c3d4e5f6","create_time":"2025-01-01T08:00:06+08:00","resource_type":'
    '"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":'
    '"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"Q5Yzs7a4/b/4WgjCgNLkISmtqAb3kFP7X4uRxOtVDvV/l0/'
    "dnfa98FnjwAfh3PPckFwZ24pBDg8xYNPBO+OhwkI6j/mj513I0pTmoonjKPotLS5YhVnA8CoOYWkbWSwXSnCeXfw9QzPymScE0Z73tw"
    "QYF4Xr00ftuBwSPWEtWKEWNmai/Tgfyalr2qimcHkRsGkTRVAgJL4R6gKEZNyFhiV1bUe0t+Bl3ze7Uc4vRChUAQzGKdgDz9V4QqaP31"
    "b9qaa9QA+268myc6k/1dpRF5HlmUbKBGd9hE5eQ2cqyQMbTH0UyPnK8rUAqKXoqyjwBJAv2U0K7wbzyu8UFYRCGVrdlcwETMIvQoFVpB"
    "XY5Hr9XWekpSGffzW8jyxg2ioLKZzEeOWtLIf2Bag56lbKsUDckYpTdMzW53SNIW/kje0V9WSLmRSYK2CT/RWjwr06B1HFnQoYqqmd3i"
    "ApnmMKFMYXW4O0PcyJe+GWVdsTqrLIlJJnD7JnEu9DZGDT15tXYMGh36YYULZ2uuB+TWaZg0MwxD+u5fL/etNqDSWTNqT+ezv+iVQGiZ"
    'tpYl3m0U03b9U25f9FLbR8gAmLaB9v","associated_data":"transaction","nonce":"Nj1X4tqbXVcS"}}'
).encode()
VECTOR_PLAIN = {
    "mchid": "1900000001", "appid": "wxd678efh567hg6787", "out_trade_no": "CRM20250101000001",
    "transaction_id": "4200000000202501010000000001", "trade_type": "JSAPI", "trade_state": "SUCCESS",
    "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "crm:lead=42",
    "success_time": "2025-01-01T08:00:05+08:00", "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "amount": {"total": 100, "payer_total": 100, "currency": "CNY", "payer_currency": "CNY"},
}
VECTOR_SECRET = {"apiV3Key": wp.API_V3_KEY, "platformKeys": {VECTOR_SERIAL: VECTOR_KEY}}

PAIR = wp.new_key_pair()
NOW = 1_735_689_606
SECRET = {"apiV3Key": wp.API_V3_KEY, "platformKeys": {VECTOR_SERIAL: VECTOR_KEY, wp.SERIAL: PAIR.public_pem}}


def _source() -> Source:
    found = source_for("wechatpay")
    assert found is not None
    return found


def _request(headers: dict[str, str], body: bytes, received_at: float = NOW + 2) -> WebhookRequest:
    return WebhookRequest(method="POST", source="wechatpay", account="demo", body=body,
                          headers={k.lower(): v for k, v in headers.items()}, received_at=received_at)


def _receive(request: WebhookRequest, secret: dict[str, Any] | None = None) -> Any:
    source = _source()
    return source.receive(request, Account("wechatpay", "demo", source.mapping, SECRET if secret is None else secret))


def test_the_published_vector_verifies_decrypts_and_maps() -> None:
    assert len(VECTOR_BODY) == 923
    signed = b"1735689606\nvDq2cF9m0pXr7sLk3NbZ8tYw1HgJ4eUa\n" + VECTOR_BODY + b"\n"
    assert hashlib.sha256(signed).hexdigest() == "7f859b0a5478e642ac7b51b3405c1b9e560ff2901a17a8639bdc0471a5f84fce"
    inbound = _receive(_request(VECTOR_HEADERS, VECTOR_BODY), VECTOR_SECRET)
    assert inbound.messages[0]["resource"] == VECTOR_PLAIN
    # what is kept for replay is clear text
    assert json.loads(inbound.payload)["resource"] == VECTOR_PLAIN
    [result] = map_payload(_source().mapping, inbound.messages)
    assert result.status == "mapped"
    [mapped] = result.events
    assert mapped.identity is not None
    assert (mapped.identity.type, mapped.identity.value) == ("wechat", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    event = mapped.event.model_dump(exclude_none=True)
    assert event == {"event": "c_wxpay_paid", "date": "2025-01-01T00:00:05Z", "source": "微信支付",
                     "externalId": "paid|1900000001|CRM20250101000001", "out_trade_no": "CRM20250101000001",
                     "transaction_id": "4200000000202501010000000001", "amount": "1.00", "payer_amount": "1.00",
                     "trade_type": "JSAPI"}
    assert not {"targetId", "targetName", "summary"} & set(event)


def test_the_test_builder_agrees_with_the_wechatpayv3_sdk() -> None:
    from wechatpayv3 import WeChatPay, WeChatPayType

    headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=int(__import__("time").time()))
    sdk = WeChatPay(wechatpay_type=WeChatPayType.JSAPI, mchid="1900000001", private_key=PAIR.private_pem,
                    cert_serial_no="0" * 40, appid="wxd678efh567hg6787", apiv3_key=wp.API_V3_KEY,
                    public_key=PAIR.public_pem, public_key_id=wp.SERIAL)
    result = sdk.callback(headers, body.decode("utf-8"))
    assert result is not None and result["resource"]["out_trade_no"] == "CRM20250101000001"


def test_an_absent_signature_type_is_rsa() -> None:
    headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=NOW)
    del headers["Wechatpay-Signature-Type"]
    assert _receive(_request(headers, body)).messages


def test_the_identity_type_comes_from_the_secret() -> None:
    headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=NOW)
    inbound = _receive(_request(headers, body), {**SECRET, "identityType": "wechat-mini"})
    [result] = map_payload(_source().mapping, inbound.messages)
    assert result.events[0].identity is not None and result.events[0].identity.type == "wechat-mini"
    with pytest.raises(Unavailable, match="identityType"):
        _receive(_request(headers, body), {**SECRET, "identityType": "Not A Type"})


@pytest.mark.parametrize(("status", "event_type"), [("SUCCESS", "c_wxpay_refunded"),
                                                      ("ABNORMAL", "c_wxpay_refund_abnormal"),
                                                      ("CLOSED", "c_wxpay_refund_closed")])
def test_each_refund_outcome_is_its_own_event(status: str, event_type: str) -> None:
    headers, body = wp.notification(PAIR.private, wp.refund(status), timestamp=NOW, event_type=f"REFUND.{status}")
    inbound = _receive(_request(headers, body))
    [result] = map_payload(_source().mapping, inbound.messages)
    [mapped] = result.events
    assert mapped.event.event == event_type
    assert mapped.event.externalId == f"refund|1900000001|RF20250101000001|{status}"
    assert mapped.identity is not None and (mapped.identity.type, mapped.identity.create) == ("wxpay-trade", False)
    extra = mapped.event.model_dump(exclude_none=True)
    assert (extra["refund_amount"], extra["out_refund_no"]) == ("1.00", "RF20250101000001")
    assert extra["date"] == ("2025-01-02T02:00:00Z" if status == "SUCCESS" else "2025-01-01T00:00:06Z")


def test_retries_of_one_payment_share_the_external_id() -> None:
    keys = set()
    for attempt in range(3):
        headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=NOW + attempt * 15,
                                        notification_id=f"n-{attempt}")
        inbound = _receive(_request(headers, body, received_at=NOW + attempt * 15))
        [result] = map_payload(_source().mapping, inbound.messages)
        keys.add(result.events[0].event.externalId)
    assert keys == {"paid|1900000001|CRM20250101000001"}


def test_account_binding_by_mchid_and_appid() -> None:
    headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=NOW)
    from dmhub_adapter.ingest.tenancy import check_account_binding

    source = _source()
    inbound = _receive(_request(headers, body))
    check_account_binding(Account("wechatpay", "demo", source.mapping,
                                  {**SECRET, "mchid": "1900000001", "appid": "wxd678efh567hg6787"}), inbound)
    for other in ({"mchid": "1900000002"}, {"appid": "wx0000000000000000"}):
        with pytest.raises(Forbidden):
            check_account_binding(Account("wechatpay", "demo", source.mapping, {**SECRET, **other}), inbound)


def _bad(kind: str) -> tuple[dict[str, str], bytes, dict[str, Any]]:
    headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=NOW)
    secret: dict[str, Any] = dict(SECRET)
    if kind == "unknown_serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_9999"
    elif kind == "sm2":
        headers["Wechatpay-Signature-Type"] = "WECHATPAY2-SM2-WITH-SM3"
    elif kind == "no_serial":
        del headers["Wechatpay-Serial"]
    elif kind == "probe":
        headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"][19:]
    elif kind == "one_byte":
        body = body.replace("支付成功".encode(), "支付成攻".encode())
    elif kind == "stale":
        headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=NOW - 301)
    elif kind in ("gcm_tag", "truncated", "not_base64", "aad", "algorithm", "no_nonce"):
        envelope = json.loads(body)
        resource = envelope["resource"]
        if kind == "gcm_tag":
            resource["ciphertext"] = wp.encrypt_resource(wp.transaction(), key="X" * 32)["ciphertext"]
        elif kind == "truncated":
            resource["ciphertext"] = resource["ciphertext"][:20]
        elif kind == "not_base64":
            resource["ciphertext"] = "%%%"
        elif kind == "aad":
            resource["associated_data"] = "refund"
        elif kind == "algorithm":
            resource["algorithm"] = "AEAD_SM4_GCM"
        else:
            del resource["nonce"]
        body = json.dumps(envelope, ensure_ascii=False).encode()
        headers["Wechatpay-Signature"] = wp.sign(PAIR.private, headers["Wechatpay-Timestamp"],
                                                 headers["Wechatpay-Nonce"], body)
    elif kind == "malformed_pem":
        secret["platformKeys"] = {wp.SERIAL: "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----"}
    elif kind == "weak_key":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        secret["platformKeys"] = {wp.SERIAL: weak.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()}
    elif kind == "short_api_key":
        secret["apiV3Key"] = "short"
    elif kind == "keys_not_object":
        secret["platformKeys"] = "PEM"
    return headers, body, secret


@pytest.mark.parametrize(("kind", "error", "code"), [
    ("unknown_serial", Unauthorized, "unknown_key"),
    ("no_serial", Unauthorized, "missing_key_id"),
    ("sm2", Unauthorized, "bad_signature"),
    ("probe", Unauthorized, "bad_signature"),
    ("one_byte", Unauthorized, "bad_signature"),
    ("stale", Unauthorized, "stale_timestamp"),
    ("gcm_tag", BadRequest, "decrypt_failed"),
    ("truncated", BadRequest, "decrypt_failed"),
    ("not_base64", BadRequest, "decrypt_failed"),
    ("aad", BadRequest, "decrypt_failed"),
    ("algorithm", BadRequest, "decrypt_failed"),
    ("no_nonce", BadRequest, "decrypt_failed"),
    ("malformed_pem", Unavailable, "account_misconfigured"),
    ("weak_key", Unavailable, "account_misconfigured"),
    ("short_api_key", Unavailable, "account_misconfigured"),
    ("keys_not_object", Unavailable, "account_misconfigured"),
])
def test_bad_input_is_refused_with_a_reason(kind: str, error: type[WebhookError], code: str) -> None:
    headers, body, secret = _bad(kind)
    with pytest.raises(error) as caught:
        _receive(_request(headers, body), secret)
    assert caught.value.code == code
    if error is Unavailable:
        assert "platformKeys" in caught.value.message or "apiV3Key" in caught.value.message


def test_replies_are_what_wechat_pay_expects() -> None:
    source = _source()
    request = _request({}, b"{}")
    ok = source.reply(request, IngestOutcome(enqueued=1))
    assert (ok.status, ok.body) == (204, "")
    failed = source.error_reply(request, Unauthorized("signature does not match", code="bad_signature"))
    assert failed.status == 401 and json.loads(failed.body) == {"code": "FAIL", "message": "signature does not match"}


def test_the_kept_clear_text_replays_without_the_key() -> None:
    headers, body = wp.notification(PAIR.private, wp.transaction(), timestamp=NOW)
    inbound = _receive(_request(headers, body))
    source = _source()
    replay = WebhookRequest(method="POST", source="wechatpay", account="demo", body=inbound.payload,
                            headers={"content-type": inbound.payload_type}, received_at=NOW + 86400 * 30)
    again = source.parse_unverified(replay, Account("wechatpay", "demo", source.mapping, {"apiV3Key": "x" * 32}))
    assert again.messages == inbound.messages
