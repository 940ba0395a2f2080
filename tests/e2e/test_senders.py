"""Real senders end to end through ``dmhub-adapter dev``: requests signed by the ``svix`` library
with svix-* headers, a Taobao-SDK-style signer with epoch-ms timestamps and Youzan's legacy body
sign are accepted and their tampered variants refused; a WeChat Pay notification (test RSA key
pair, real AES-GCM resource), a WeCom add-contact push encrypted by wechatpy and a signed Shopify
orders/paid each arrive in the DM Hub emulator once after three deliveries of the same request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from svix.webhooks import Webhook as SvixWebhook

from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.demo_keys import WECHATPAY_PRIVATE_KEY, WECHATPAY_SERIAL
from tests import wechatpay_notify as wp
from tests import wecom_push
from tests.e2e.conftest import RunningStack, wait_for

pytestmark = pytest.mark.e2e

ACCOUNTS = load_accounts()


def _secret(source: str) -> dict[str, Any]:
    secret = ACCOUNTS.secret(source, "demo")
    assert secret is not None, source
    return dict(secret)


def post(stack: RunningStack, source: str, body: bytes, headers: dict[str, str], query: str = "") -> httpx.Response:
    url = f"{stack.gateway}/webhooks/{source}/demo" + (f"?{query}" if query else "")
    return httpx.post(url, content=body, headers=headers, timeout=30)


def events_with(stack: RunningStack, needle: str) -> list[dict[str, Any]]:
    return [e for e in stack.emulator_state()["events"] if needle in str(e.get("externalId", ""))]


def arrives_once(stack: RunningStack, needle: str) -> dict[str, Any]:
    """Wait until the event is in DM Hub and the queue is empty; it must be there exactly once."""
    wait_for(lambda: events_with(stack, needle) and stack.drained(), 25, what=f"delivery of {needle}")
    time.sleep(1.5)  # a duplicate that slipped through would reach the emulator in this time
    found = events_with(stack, needle)
    assert len(found) == 1, found
    return found[0]


def nothing_arrives(stack: RunningStack, needle: str) -> None:
    wait_for(stack.drained, what="a quiet queue")
    time.sleep(1.0)
    assert events_with(stack, needle) == []


# ---- Svix ------------------------------------------------------------------------------------


def test_svix_signed_requests_are_accepted_and_tampered_ones_refused(stack: RunningStack) -> None:
    secret = _secret("standard-webhooks")["signingSecret"]
    msg_id = "msg_e2e" + secrets.token_hex(8)
    email = f"svix-{secrets.token_hex(4)}@example.com"
    body = json.dumps({"type": "invoice.paid", "timestamp": datetime.now(UTC).isoformat(),
                       "data": {"id": "inv_e2e", "customer": {"email": email}}})
    now = datetime.now(UTC)
    headers = {"svix-id": msg_id, "svix-timestamp": str(int(now.timestamp())),
               "svix-signature": SvixWebhook(secret).sign(msg_id, now, body), "content-type": "application/json"}
    forged = post(stack, "standard-webhooks", body.replace("inv_e2e", "inv_e2f").encode(), headers)
    assert forged.status_code == 401, forged.text
    renamed = post(stack, "standard-webhooks", body.encode(), {**headers, "svix-id": msg_id + "x"})
    assert renamed.status_code == 401, renamed.text
    nothing_arrives(stack, msg_id)
    response = post(stack, "standard-webhooks", body.encode(), headers)
    assert response.status_code == 200, response.text
    event = arrives_once(stack, msg_id)
    assert event["event"] == "c_invoice_paid"


# ---- Taobao, SDK style -----------------------------------------------------------------------


def _top_md5(params: dict[str, str], secret: str, body: str) -> str:
    """TOP md5 signing as the TOP SDKs do it (research/taobao.md §4)."""
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return hashlib.md5(f"{secret}{text}{body}{secret}".encode()).hexdigest().upper()


def test_taobao_sdk_epoch_ms_timestamp_accepted_and_tampered_refused(stack: RunningStack) -> None:
    secret = _secret("taobao")
    tid = 3_800_000_000_000_000_000 + secrets.randbelow(10**17)
    content = json.dumps({"buyer_open_uid": "AAHq5d-EAAeG3JedwSFpZMe1", "tid": tid, "oid": tid, "payment": "9.90",
                          "status": "WAIT_SELLER_SEND_GOODS"})
    pub_time = datetime.fromtimestamp(time.time() + 8 * 3600, UTC).strftime("%Y-%m-%d %H:%M:%S")
    body = json.dumps({"id": 2_760_000_000_000_000_000 + secrets.randbelow(10**17),
                       "topic": "taobao_trade_TradeBuyerPay", "pub_app_key": secret["appKey"], "pub_time": pub_time,
                       "user_id": 2200123456789, "content": content})
    params = {"app_key": secret["appKey"], "format": "json", "sign_method": "md5",
              "timestamp": str(int(time.time() * 1000)), "v": "2.0", "partner_id": "top-sdk-python"}
    params["sign"] = _top_md5(params, secret["appSecret"], body)
    headers = {"content-type": "application/json;charset=utf-8"}
    tampered = post(stack, "taobao", body.replace("9.90", "0.01").encode(), headers, urlencode(params))
    assert tampered.status_code == 401, tampered.text
    shifted = {**params, "timestamp": str(int(params["timestamp"]) + 1)}
    assert post(stack, "taobao", body.encode(), headers, urlencode(shifted)).status_code == 401
    nothing_arrives(stack, str(tid))
    response = post(stack, "taobao", body.encode(), headers, urlencode(params))
    assert response.status_code == 200, response.text
    arrives_once(stack, str(tid))


# ---- Youzan legacy ---------------------------------------------------------------------------


def test_youzan_legacy_push_accepted_and_tampered_refused(stack: RunningStack) -> None:
    secret = _secret("youzan")
    tid = "E" + str(secrets.randbelow(10**20)).zfill(20)
    now = time.time()
    update_time = datetime.fromtimestamp(now + 8 * 3600, UTC).strftime("%Y-%m-%d %H:%M:%S")
    msg = quote(json.dumps({"full_order_info": {
        "order_info": {"tid": tid, "kdt_id": 10001, "status": "TRADE_PAID", "update_time": update_time},
        "buyer_info": {"yz_open_id": "yzopen-" + secrets.token_hex(6)}, "pay_info": {"payment": "19.90"}}}))
    push = {"client_id": secret["clientId"], "id": tid, "kdt_id": 10001, "kdt_name": "Demo", "type": "trade_TradePaid",
            "status": "TRADE_PAID", "msg": msg, "test": False, "mode": 1, "sendCount": 0, "version": int(now),
            "sign": hashlib.md5(f"{secret['clientId']}{msg}{secret['clientSecret']}".encode()).hexdigest()}
    headers = {"content-type": "application/json"}
    for change in ({"id": tid + "0"}, {"msg": msg.replace("19.90", "0.01")}, {"sign": "0" * 32}):
        refused = post(stack, "youzan", json.dumps({**push, **change}).encode(), headers)
        assert refused.status_code == 401, refused.text
    nothing_arrives(stack, tid)
    response = post(stack, "youzan", json.dumps(push).encode(), headers)
    assert response.status_code == 200 and response.json() == {"code": 0, "msg": "success"}, response.text
    assert arrives_once(stack, tid)["event"] == "c_youzan_order_paid"


# ---- three deliveries, one event ---------------------------------------------------------------


def test_wechatpay_notification_delivered_three_times_arrives_once(stack: RunningStack) -> None:
    key = serialization.load_pem_private_key(WECHATPAY_PRIVATE_KEY.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    trade = "CRM" + secrets.token_hex(8).upper()
    openid = "oE2ePay" + secrets.token_hex(10)
    plain = wp.transaction(trade, openid=openid,
                           success_time=datetime.fromtimestamp(time.time() + 8 * 3600, UTC)
                           .strftime("%Y-%m-%dT%H:%M:%S+08:00"))
    headers, body = wp.notification(key, plain, timestamp=int(time.time()), serial=WECHATPAY_SERIAL,
                                    key=_secret("wechatpay")["apiV3Key"])
    unknown = post(stack, "wechatpay", body, {**headers, "Wechatpay-Serial": "PUB_KEY_ID_UNKNOWN"})
    assert unknown.status_code == 401 and unknown.json()["code"] == "FAIL", unknown.text
    for _ in range(3):
        response = post(stack, "wechatpay", body, headers)
        assert response.status_code == 204 and response.content == b"", response.text
    event = arrives_once(stack, trade)
    assert (event["event"], event["amount"]) == ("c_wxpay_paid", "1.00")
    identities = [i for i in stack.emulator_state()["identities"] if i["identityValue"] == openid]
    assert [i["identityType"] for i in identities] == ["wechat"]


def test_wecom_add_contact_encrypted_by_wechatpy_delivered_three_times_arrives_once(stack: RunningStack) -> None:
    secret = _secret("wecom")
    external = "wmE2e" + secrets.token_hex(12)
    now = int(time.time())
    query, body = wecom_push.push(wecom_push.contact_xml(created=now, external=external, corp_id=secret["corpId"]),
                                  timestamp=now, secret=secret)
    other = wecom_push.push(wecom_push.contact_xml(created=now, external=external), timestamp=now, secret=secret,
                            receive_id="wwOTHERCORPID0000")
    refused = post(stack, "wecom", other[1], {"content-type": "text/xml"}, urlencode(other[0]))
    assert refused.status_code == 400, refused.text
    for _ in range(3):
        response = post(stack, "wecom", body, {"content-type": "text/xml"}, urlencode(query))
        assert response.status_code == 200 and response.content == b"", response.text
    event = arrives_once(stack, external)
    assert (event["event"], event["user_id"], event["state"]) == ("c_wecom_contact_added", "zhangsan", "crm_c7")


def test_shopify_orders_paid_delivered_three_times_arrives_once(stack: RunningStack) -> None:
    secret = _secret("shopify")["webhookSecret"]
    order_id = 820_000_000_000_000_000 + secrets.randbelow(10**15)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    order = {"id": order_id, "email": f"shop-{secrets.token_hex(4)}@example.com", "created_at": stamp,
             "updated_at": stamp, "processed_at": stamp, "currency": "USD", "total_price": "199.00",
             "financial_status": "paid", "name": "#1001", "order_number": 1001, "line_items": [],
             "customer": {"id": 115310627314723954}, "note": "café ☕"}
    body = json.dumps(order, ensure_ascii=False).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    altered = post(stack, "shopify", body.replace(b"199.00", b"199.01"),
                   {"x-shopify-hmac-sha256": signature, "x-shopify-topic": "orders/paid"})
    assert altered.status_code == 401, altered.text
    for attempt in range(3):
        # each delivery with its own (unsigned) event and webhook ids, as duplicate subscriptions send
        headers = {"content-type": "application/json", "x-shopify-hmac-sha256": signature,
                   "x-shopify-topic": "orders/paid", "x-shopify-event-id": f"evt-{attempt}-{order_id}",
                   "x-shopify-webhook-id": secrets.token_hex(8), "x-shopify-shop-domain": "demo.myshopify.com"}
        response = post(stack, "shopify", body, headers)
        assert response.status_code == 200, response.text
    event = arrives_once(stack, f"order|{order_id}|paid")
    assert (event["event"], event["amount"], event["currency"]) == ("c_shopify_order_paid", "199.00", "USD")
