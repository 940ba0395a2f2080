"""Freshly signed sample webhooks (current timestamp) for the local stack and its tests.

Each sample is what the platform (or, for Taobao, a TMC relay) would send right now, signed
with the account's secret through the adapters' own client-side helpers, so a sample that
passes here passes for the same reason a real push does.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

#: the demo WeChat follower and official account (fixed, so repeated samples are one customer)
DEMO_OPENID = "oDemo-LocalStack000000000001"
DEMO_OA = "gh_0123456789ab"
#: the demo WeChat account in plaintext mode (local/demo-accounts.yaml): the keyed ``demo``
#: account refuses plaintext pushes, so plaintext samples go here
WECHAT_PLAIN_ACCOUNT = "demo-plain"
#: the demo Taobao buyer and shop
DEMO_BUYER = {"buyer_nick": "t**", "buyer_open_uid": "AAHq5d-EAAeG3JedwSFpZMe1"}
DEMO_SHOP = {"user_id": 2200123456789, "user_nick": "示例旗舰店"}


@dataclass(frozen=True)
class SampleRequest:
    name: str
    source: str
    account: str
    method: str
    raw_query: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    #: the values that identify this sample's event (openid, tid …), for tests and printing
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/webhooks/{quote(self.source, safe='')}/{quote(self.account, safe='')}"

    def url(self, gateway: str) -> str:
        base = gateway.rstrip("/") + self.path
        return f"{base}?{self.raw_query}" if self.raw_query else base


@dataclass(frozen=True)
class SampleSpec:
    source: str
    description: str
    build: Callable[..., SampleRequest]
    #: the demo account the sample is meant for (its secret signs it, its URL receives it)
    account: str = "demo"


# -- WeChat ---------------------------------------------------------------------------------------


def wechat_event_xml(event: str, *, openid: str, to_user: str = DEMO_OA, created: int | None = None,
                     **fields: str) -> str:
    created = int(time.time()) if created is None else created
    parts = [
        f"<ToUserName><![CDATA[{to_user}]]></ToUserName>",
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
        f"<CreateTime>{created}</CreateTime>",
        "<MsgType><![CDATA[event]]></MsgType>",
        f"<Event><![CDATA[{event}]]></Event>",
        *(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()),
    ]
    return "<xml>" + "".join(parts) + "</xml>"


def wechat_text_xml(content: str, *, openid: str, to_user: str = DEMO_OA, created: int | None = None,
                    msg_id: int | None = None) -> str:
    created = int(time.time()) if created is None else created
    msg_id = msg_id if msg_id is not None else secrets.randbelow(9 * 10**18) + 10**18
    return (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def _wechat(name: str, xml: str, secret: Mapping[str, Any], account: str, mode: str, now: float,
            facts: dict[str, Any]) -> SampleRequest:
    from dmhub_adapter.sources.wechat import signed_request

    raw_query, body = signed_request(secret, xml, mode, int(now))  # type: ignore[arg-type]
    return SampleRequest(
        name=name,
        source="wechat",
        account=account,
        method="POST",
        raw_query=raw_query,
        body=body,
        headers={"content-type": "text/xml", "user-agent": "Mozilla/4.0"},
        facts={"mode": mode, **facts},
    )


def _wechat_follow(mode: str, via_qr: bool) -> Callable[..., SampleRequest]:
    def build(name: str, secret: Mapping[str, Any], account: str, now: float, openid: str = DEMO_OPENID,
              **_: Any) -> SampleRequest:
        extra = {"EventKey": "qrscene_20240618", "Ticket": "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9x"}
        xml = wechat_event_xml("subscribe", openid=openid, created=int(now), **(extra if via_qr else {}))
        return _wechat(name, xml, secret, account, mode, now,
                       {"openid": openid, "event": "subscribe", "created": int(now)})

    return build


def _wechat_unfollow(name: str, secret: Mapping[str, Any], account: str, now: float, openid: str = DEMO_OPENID,
                     **_: Any) -> SampleRequest:
    xml = wechat_event_xml("unsubscribe", openid=openid, created=int(now))
    return _wechat(name, xml, secret, account, "safe", now, {"openid": openid, "event": "unsubscribe"})


def _wechat_scan(name: str, secret: Mapping[str, Any], account: str, now: float, openid: str = DEMO_OPENID,
                 **_: Any) -> SampleRequest:
    xml = wechat_event_xml("SCAN", openid=openid, created=int(now), EventKey="20240618",
                           Ticket="gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9x")
    return _wechat(name, xml, secret, account, "safe", now, {"openid": openid, "event": "SCAN"})


def _wechat_text(name: str, secret: Mapping[str, Any], account: str, now: float, openid: str = DEMO_OPENID,
                 **_: Any) -> SampleRequest:
    xml = wechat_text_xml("你好", openid=openid, created=int(now))
    return _wechat(name, xml, secret, account, "safe", now, {"openid": openid, "msgType": "text"})


def _wechat_verify(name: str, secret: Mapping[str, Any], account: str, now: float, **_: Any) -> SampleRequest:
    from dmhub_adapter.sources.wechat import handshake_query

    echostr = str(secrets.randbelow(10**18))
    return SampleRequest(
        name=name, source="wechat", account=account, method="GET",
        raw_query=handshake_query(str(secret["token"]), echostr, timestamp=int(now)),
        body=b"", headers={"user-agent": "Mozilla/4.0"}, facts={"echostr": echostr},
    )


# -- Taobao (through a relay) ---------------------------------------------------------------------


def new_tid() -> int:
    """A fresh Taobao-like order id (19 digits, above 2**53 like real ones)."""
    return 3_800_000_000_000_000_000 + secrets.randbelow(10**17)


def taobao_trade_message(topic: str, status: str, *, tid: int, now: float, payment: str = "199.00",
                         buyer: Mapping[str, str] = DEMO_BUYER, app_key: str = "12345678") -> dict[str, Any]:
    from dmhub_adapter.sources.taobao import format_timestamp

    content = {**buyer, "oid": tid, "payment": payment, "seller_nick": DEMO_SHOP["user_nick"], "status": status,
               "tid": tid, "type": "fixed"}
    return {
        "id": 2_760_000_000_000_000_000 + secrets.randbelow(10**17),
        "topic": topic,
        "pub_time": format_timestamp(now - 1),
        "pub_app_key": app_key,
        **DEMO_SHOP,
        "content": json.dumps(dict(sorted(content.items())), ensure_ascii=False, separators=(",", ":")),
    }


def taobao_request(name: str, message: Mapping[str, Any], secret: Mapping[str, Any], account: str, now: float,
                   facts: dict[str, Any], sign_method: str = "md5") -> SampleRequest:
    from dmhub_adapter.sources.taobao import signed_request

    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return SampleRequest(
        name=name,
        source="taobao",
        account=account,
        method="POST",
        raw_query=signed_request(secret, body, sign_method, now),
        body=body,
        headers={"content-type": "application/json; charset=utf-8", "user-agent": "taobao-tmc-relay/1.0"},
        facts=facts,
    )


def _taobao_trade(topic: str, status: str) -> Callable[..., SampleRequest]:
    def build(name: str, secret: Mapping[str, Any], account: str, now: float, tid: int | None = None,
              **_: Any) -> SampleRequest:
        tid = tid if tid is not None else new_tid()
        message = taobao_trade_message(f"taobao_trade_{topic}", status, tid=tid, now=now,
                                       app_key=str(secret.get("appKey", "12345678")))
        facts = {"tid": tid, "topic": message["topic"], "buyer_open_uid": DEMO_BUYER["buyer_open_uid"]}
        return taobao_request(name, message, secret, account, now, facts)

    return build


def _taobao_refund(name: str, secret: Mapping[str, Any], account: str, now: float, tid: int | None = None,
                   **_: Any) -> SampleRequest:
    from dmhub_adapter.sources.taobao import format_timestamp

    tid = tid if tid is not None else new_tid()
    refund_id = 228_000_000_000_000_000 + secrets.randbelow(10**15)
    content = {**DEMO_BUYER, "bill_type": "refund_bill", "modified": format_timestamp(now - 2), "oid": tid,
               "refund_fee": "199.00", "refund_id": refund_id, "refund_phase": "aftersale",
               "seller_nick": DEMO_SHOP["user_nick"], "tid": tid}
    message = {
        "id": 2_760_000_000_000_000_000 + secrets.randbelow(10**17),
        "topic": "taobao_refund_RefundCreated",
        "pub_time": format_timestamp(now - 1),
        "pub_app_key": str(secret.get("appKey", "12345678")),
        **DEMO_SHOP,
        "content": json.dumps(dict(sorted(content.items())), ensure_ascii=False, separators=(",", ":")),
    }
    facts = {"tid": tid, "refund_id": refund_id, "topic": message["topic"]}
    return taobao_request(name, message, secret, account, now, facts)


# -- config-only sources (signed the way their mapping's verification block says) ----------------


def signed_by_config(name: str, source: str, account: str, secret: Mapping[str, Any], body: bytes, now: float,
                     facts: dict[str, Any], headers: Mapping[str, str] | None = None) -> SampleRequest:
    """``body`` signed for ``source`` by its mapping's ``verification`` block (what ``send`` does)."""
    from dmhub_adapter.sources.registry import load_source_mapping, sign_for

    mapping = load_source_mapping(source)
    assert mapping is not None
    signed = sign_for(mapping, secret, body, dict(headers or {}), {}, now)
    return SampleRequest(name=name, source=source, account=account, method="POST", raw_query=signed.raw_query,
                         body=signed.body, headers=signed.headers, facts=facts)


def _youzan_paid(name: str, secret: Mapping[str, Any], account: str, now: float, tid: str | None = None,
                 **_: Any) -> SampleRequest:
    from urllib.parse import quote

    tid = tid or f"E{int(now)}{secrets.randbelow(10**6):06d}"
    order = {"full_order_info": {
        "order_info": {"tid": tid, "status": "WAIT_SELLER_SEND_GOODS"},
        "buyer_info": {"yz_open_id": "yzopen-demo-7f3a2c", "fans_type": 1},
        "pay_info": {"payment": "199.00", "total_fee": "199.00", "post_fee": "0.00"}}}
    message = {"client_id": str(secret.get("clientId", "")), "id": tid, "kdt_id": 10001, "kdt_name": "Demo Shop",
               "msg": quote(json.dumps(order, separators=(",", ":"))), "type": "trade_TradePaid",
               "status": "TRADE_PAID", "version": int(now), "test": False, "mode": 1, "sendCount": 0}
    body = json.dumps(message, separators=(",", ":")).encode()
    return signed_by_config(name, "youzan", account, secret, body, now, {"tid": tid},
                            {"event-type": "trade_TradePaid"})


def _doudian_paid(name: str, secret: Mapping[str, Any], account: str, now: float, tid: int | None = None,
                  **_: Any) -> SampleRequest:
    order = tid if tid is not None else 4_800_000_000_000_000_000 + secrets.randbelow(10**17)
    data = {"p_id": order, "shop_id": 77977, "order_status": 2, "pay_amount": 1990, "pay_time": int(now)}
    body = json.dumps([{"tag": "101", "msg_id": str(10**19 + secrets.randbelow(10**18)),
                        "data": json.dumps(data, separators=(",", ":"))}], separators=(",", ":")).encode()
    return signed_by_config(name, "doudian", account, secret, body, now, {"p_id": order},
                            {"app-id": str(secret.get("appKey", ""))})


def _standard_webhook(name: str, secret: Mapping[str, Any], account: str, now: float, **_: Any) -> SampleRequest:
    from datetime import UTC

    invoice = f"inv_{secrets.token_hex(4)}"
    stamp = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {"type": "invoice.paid", "timestamp": stamp,
               "data": {"id": invoice, "amount": 4200, "currency": "CNY",
                        "customer": {"id": "cus_501", "email": "Li.Lei@example.com", "name": "Li Lei"}}}
    body = json.dumps(payload, separators=(",", ":")).encode()
    sample = signed_by_config(name, "standard-webhooks", account, secret, body, now, {"invoice": invoice})
    return SampleRequest(name=sample.name, source=sample.source, account=sample.account, method="POST",
                         raw_query=sample.raw_query, body=sample.body, headers=sample.headers,
                         facts={**sample.facts, "webhook-id": sample.headers.get("webhook-id")})
# -- WeChat Pay, WeCom, Shopify ------------------------------------------------------------------

#: the demo WeChat Pay payer (an openid of the demo app)
DEMO_PAYER = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
#: the demo WeCom customer and employee
DEMO_EXTERNAL_USER = "wmAJ2GCAAAXtWyujaWJHDDGi0mACHAAA"
DEMO_EMPLOYEE = "zhangsan"


def new_trade_no() -> str:
    """A fresh merchant order number (out_trade_no)."""
    return "CRM" + time.strftime("%Y%m%d") + str(secrets.randbelow(10**12)).zfill(12)


def wechatpay_request(name: str, secret: Mapping[str, Any], account: str, now: float, event_type: str,
                      plain: Mapping[str, Any], facts: dict[str, Any]) -> SampleRequest:
    """A WeChat Pay APIv3 notification: ``plain`` AES-256-GCM encrypted with the account's APIv3
    key, the body RSA-signed with the demo platform key (demo_keys)."""
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from dmhub_adapter_tools.local.demo_keys import WECHATPAY_PRIVATE_KEY, WECHATPAY_SERIAL

    kind = "refund" if event_type.startswith("REFUND.") else "transaction"
    nonce = secrets.token_hex(6)
    cipher = AESGCM(str(secret["apiV3Key"]).encode()).encrypt(
        nonce.encode(), json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode(), kind.encode())
    envelope = {"id": f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-5c6d-9e8f-{secrets.token_hex(6)}",
                "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(now + 8 * 3600)),
                "resource_type": "encrypt-resource", "event_type": event_type,
                "summary": "支付成功" if kind == "transaction" else "退款状态",
                "resource": {"original_type": kind, "algorithm": "AEAD_AES_256_GCM",
                             "ciphertext": base64.b64encode(cipher).decode(), "associated_data": kind,
                             "nonce": nonce}}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    timestamp, header_nonce = str(int(now)), secrets.token_hex(16)
    key = serialization.load_pem_private_key(WECHATPAY_PRIVATE_KEY.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signed = f"{timestamp}\n{header_nonce}\n".encode() + body + b"\n"
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    headers = {"content-type": "application/json", "wechatpay-serial": WECHATPAY_SERIAL,
               "wechatpay-timestamp": timestamp, "wechatpay-nonce": header_nonce,
               "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
               "wechatpay-signature": base64.b64encode(signature).decode(), "user-agent": "Mozilla/4.0"}
    return SampleRequest(name=name, source="wechatpay", account=account, method="POST", raw_query="", body=body,
                         headers=headers, facts=facts)


def _gmt8(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(now + 8 * 3600))


def _wechatpay_paid(name: str, secret: Mapping[str, Any], account: str, now: float, out_trade_no: str | None = None,
                    openid: str = DEMO_PAYER, **_: Any) -> SampleRequest:
    trade = out_trade_no or new_trade_no()
    plain = {"mchid": str(secret.get("mchid", "1900000001")), "appid": "wxd678efh567hg6787", "out_trade_no": trade,
             "transaction_id": "42" + str(secrets.randbelow(10**26)).zfill(26), "trade_type": "JSAPI",
             "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "",
             "success_time": _gmt8(now - 1), "payer": {"openid": openid},
             "amount": {"total": 19900, "payer_total": 19900, "currency": "CNY", "payer_currency": "CNY"}}
    return wechatpay_request(name, secret, account, now, "TRANSACTION.SUCCESS", plain,
                             {"out_trade_no": trade, "openid": openid})


def _wechatpay_refund(name: str, secret: Mapping[str, Any], account: str, now: float,
                      out_trade_no: str | None = None, **_: Any) -> SampleRequest:
    trade = out_trade_no or new_trade_no()
    refund_no = "RF" + trade[3:]
    plain = {"mchid": str(secret.get("mchid", "1900000001")), "out_trade_no": trade,
             "transaction_id": "42" + str(secrets.randbelow(10**26)).zfill(26), "out_refund_no": refund_no,
             "refund_id": "50" + str(secrets.randbelow(10**27)).zfill(27), "refund_status": "SUCCESS",
             "success_time": _gmt8(now - 1), "user_received_account": "招商银行信用卡0403",
             "amount": {"total": 19900, "refund": 19900, "payer_total": 19900, "payer_refund": 19900}}
    return wechatpay_request(name, secret, account, now, "REFUND.SUCCESS", plain,
                             {"out_trade_no": trade, "out_refund_no": refund_no})


def wecom_contact_xml(change_type: str, *, corp_id: str, created: int, external: str = DEMO_EXTERNAL_USER,
                      user: str = DEMO_EMPLOYEE, state: str = "crm_c7") -> str:
    """The decrypted XML of a change_external_contact callback."""
    return ("<xml>"
            f"<ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_contact]]></Event>"
            f"<ChangeType><![CDATA[{change_type}]]></ChangeType><UserID><![CDATA[{user}]]></UserID>"
            f"<ExternalUserID><![CDATA[{external}]]></ExternalUserID><State><![CDATA[{state}]]></State>"
            "<WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>")


def _wecom_contact(change_type: str) -> Callable[..., SampleRequest]:
    def build(name: str, secret: Mapping[str, Any], account: str, now: float,
              external: str = DEMO_EXTERNAL_USER, **_: Any) -> SampleRequest:
        from dmhub_adapter.sources.wecom import signed_push

        xml = wecom_contact_xml(change_type, corp_id=str(secret["corpId"]), created=int(now), external=external)
        raw_query, body = signed_push(secret, xml, now=now)
        return SampleRequest(name=name, source="wecom", account=account, method="POST", raw_query=raw_query,
                             body=body, headers={"content-type": "text/xml"},
                             facts={"external": external, "change_type": change_type, "created": int(now)})

    return build


def _wecom_verify(name: str, secret: Mapping[str, Any], account: str, now: float, **_: Any) -> SampleRequest:
    from dmhub_adapter.sources.wecom import handshake_query

    reply = str(secrets.randbelow(10**18))
    return SampleRequest(name=name, source="wecom", account=account, method="GET",
                         raw_query=handshake_query(secret, reply, now=now), body=b"", facts={"echostr": reply})


def _shopify_order(topic: str) -> Callable[..., SampleRequest]:
    def build(name: str, secret: Mapping[str, Any], account: str, now: float, order_id: int | None = None,
              email: str = "jon@example.com", **_: Any) -> SampleRequest:
        import base64
        import hashlib
        import hmac

        order_id = order_id if order_id is not None else 820_000_000_000_000_000 + secrets.randbelow(10**15)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S-00:00", time.gmtime(now - 1))
        order = {"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "email": email,
                 "phone": None, "created_at": stamp, "updated_at": stamp, "processed_at": stamp, "currency": "USD",
                 "total_price": "199.00", "financial_status": "paid", "name": "#9999",
                 "order_number": 9999, "line_items": [{"id": 1, "title": "Tea", "quantity": 1, "price": "199.00"}],
                 "customer": {"id": 115310627314723954, "email": email, "phone": None}}
        body = json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        signature = base64.b64encode(hmac.new(str(secret["webhookSecret"]).encode(), body, hashlib.sha256).digest())
        event_id = secrets.token_hex(16)
        headers = {"content-type": "application/json", "x-shopify-hmac-sha256": signature.decode(),
                   "x-shopify-topic": topic, "x-shopify-shop-domain": "demo.myshopify.com",
                   "x-shopify-api-version": "2025-01", "x-shopify-webhook-id": secrets.token_hex(16),
                   "x-shopify-event-id": event_id, "x-shopify-triggered-at": stamp}
        return SampleRequest(name=name, source="shopify", account=account, method="POST", raw_query="", body=body,
                             headers=headers, facts={"order_id": order_id, "topic": topic, "email": email})

    return build


SAMPLES: dict[str, SampleSpec] = {
    "wechat-follow": SampleSpec("wechat", "follow via a parametric QR code, safe (AES) mode",
                                _wechat_follow("safe", True)),
    "wechat-compat-follow": SampleSpec("wechat", "follow, compatible mode (clear text + Encrypt)",
                                       _wechat_follow("compat", False)),
    "wechat-plain-follow": SampleSpec("wechat", f"follow, plaintext mode (account {WECHAT_PLAIN_ACCOUNT})",
                                      _wechat_follow("plain", False), account=WECHAT_PLAIN_ACCOUNT),
    "wechat-unfollow": SampleSpec("wechat", "unfollow, safe mode", _wechat_unfollow),
    "wechat-scan": SampleSpec("wechat", "a follower scans a parametric QR code, safe mode", _wechat_scan),
    "wechat-text": SampleSpec("wechat", "a text message, safe mode", _wechat_text),
    "wechat-verify": SampleSpec("wechat", "the URL-verification GET (answered with echostr)", _wechat_verify),
    "taobao-created": SampleSpec("taobao", "order created (taobao_trade_TradeCreate), MD5-signed relay",
                                 _taobao_trade("TradeCreate", "WAIT_BUYER_PAY")),
    "taobao-paid": SampleSpec("taobao", "order paid (taobao_trade_TradeBuyerPay)",
                              _taobao_trade("TradeBuyerPay", "WAIT_SELLER_SEND_GOODS")),
    "taobao-shipped": SampleSpec("taobao", "order shipped (taobao_trade_TradeSellerShip)",
                                 _taobao_trade("TradeSellerShip", "WAIT_BUYER_CONFIRM_GOODS")),
    "taobao-success": SampleSpec("taobao", "order completed (taobao_trade_TradeSuccess)",
                                 _taobao_trade("TradeSuccess", "TRADE_FINISHED")),
    "taobao-refund": SampleSpec("taobao", "refund requested (taobao_refund_RefundCreated)", _taobao_refund),
    "youzan-paid": SampleSpec("youzan", "trade paid (trade_TradePaid), Event-Sign md5", _youzan_paid),
    "doudian-paid": SampleSpec("doudian", "order paid (tag 101), event-sign md5", _doudian_paid),
    "standard-webhooks-invoice": SampleSpec("standard-webhooks", "invoice.paid, v1 HMAC-SHA256 signature",
                                            _standard_webhook),
    "wechatpay-paid": SampleSpec("wechatpay", "payment succeeded (TRANSACTION.SUCCESS), RSA-signed, AES-GCM resource",
                                 _wechatpay_paid),
    "wechatpay-refund": SampleSpec("wechatpay", "refund succeeded (REFUND.SUCCESS)", _wechatpay_refund),
    "wecom-add-contact": SampleSpec("wecom", "a customer adds an employee (add_external_contact), encrypted",
                                    _wecom_contact("add_external_contact")),
    "wecom-customer-left": SampleSpec("wecom", "the customer deletes the employee (del_follow_user)",
                                      _wecom_contact("del_follow_user")),
    "wecom-verify": SampleSpec("wecom", "the URL-verification GET (answered with the decrypted echostr)",
                               _wecom_verify),
    "shopify-order-paid": SampleSpec("shopify", "orders/paid, HMAC-signed", _shopify_order("orders/paid")),
    "shopify-order-created": SampleSpec("shopify", "orders/create, HMAC-signed", _shopify_order("orders/create")),
}


class UnknownSample(KeyError):
    pass


def build_sample(name: str, secret: Mapping[str, Any], *, account: str | None = None,
                 now: float | datetime | None = None, **params: Any) -> SampleRequest:
    """Sample ``name`` signed with ``secret`` at ``now`` (default: the current time), addressed to
    ``account`` (default: the sample's own demo account, ``SampleSpec.account``).

    ``params`` pin what is otherwise fresh or demo data: ``openid`` (WeChat), ``tid`` (Taobao).
    """
    spec = SAMPLES.get(name)
    if spec is None:
        raise UnknownSample(name)
    moment = now.timestamp() if isinstance(now, datetime) else (time.time() if now is None else float(now))
    return spec.build(name, secret, account or spec.account, moment, **params)
