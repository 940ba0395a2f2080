"""Write the API Gateway v2 sample events of the config-only sources into events/.

    python scripts/make_config_source_events.py [--out DIR] [--check]

Each event is signed with the source's own ``verification`` block (from its mapping file) and
the demo account's secret (layers/shared/dmhub_adapter/local/demo-accounts.yaml), so the samples
pass the real ingest handler, ``sam local invoke -e`` and ``dmhub-adapter map``. Times are fixed
(the request time equals the signed timestamp), so the output is the same on every run;
``--check`` exits 1 when a file in DIR differs from what would be written.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from dmhub_adapter.sources.generic.signatures import SignatureScheme, SignedRequest, header_names, sign
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.apigw_event import make_event

ACCOUNT = "demo"
#: 2024-01-01T00:00:00Z: the moment every sample is sent (and signed)
SENT_AT = 1704067200


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _signed_event(source: str, body: bytes, headers: dict[str, str], *, request_id: str,
                  extra_signatures: list[str] | None = None, sent_at: int = SENT_AT) -> dict[str, Any]:
    adapter = source_for(source)
    assert adapter is not None, f"no mapping file for {source}"
    scheme = adapter.verification  # type: ignore[attr-defined]
    assert isinstance(scheme, SignatureScheme)
    secret = load_accounts().secret(source, ACCOUNT)
    assert secret is not None, f"no demo account for {source}"
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = sign(scheme, SignedRequest(body=body, headers=lowered, received_at=sent_at), secret)
    names = [name.lower() for name in header_names(scheme.signature.header)]
    assert names
    # Of alternative names (svix-signature, webhook-signature), the one of the family the
    # sample's other headers use.
    families = {header.split("-")[0] for header in lowered}
    signature_header = next((name for name in names if name.split("-")[0] in families), names[0])
    values = [*(extra_signatures or []), signature]
    separator = scheme.signature.separator or ""
    all_headers = {"content-type": "application/json", **lowered,
                   signature_header: separator.join(values) if separator else signature}
    return make_event(method="POST", source=source, account=ACCOUNT, body=body, headers=all_headers,
                      request_id=request_id, now_ms=sent_at * 1000)


def _signed_legacy_event(body: bytes) -> dict[str, Any]:
    return make_event(method="POST", source="youzan", account=ACCOUNT, body=body,
                      headers={"content-type": "application/json"}, request_id="youzan-legacy-trade-paid",
                      now_ms=SENT_AT * 1000)


def _youzan_body(type_: str, status: str, msg: dict[str, Any], *, test: bool = False) -> bytes:
    envelope = {
        "client_id": "cid123",
        "id": "E20240101000000000001",
        "kdt_id": 10001,
        "kdt_name": "Demo Shop",
        "msg": quote(_compact(msg), safe=""),
        "type": type_,
        "status": status,
        "version": SENT_AT,
        "test": test,
        "mode": 1,
        "sendCount": 0,
    }
    return _compact(envelope).encode("utf-8")


def _wechatpay_event(name: str, event_type: str, plain: dict[str, Any], *, nonce: str) -> dict[str, Any]:
    """A WeChat Pay notification: the resource AES-GCM encrypted with the demo APIv3 key, the
    body signed with the demo platform key pair (dmhub_adapter_tools.local.demo_keys)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from dmhub_adapter_tools.local.demo_keys import WECHATPAY_PRIVATE_KEY, WECHATPAY_SERIAL

    secret = load_accounts().secret("wechatpay", ACCOUNT)
    assert secret is not None
    kind = "refund" if event_type.startswith("REFUND.") else "transaction"
    cipher = AESGCM(str(secret["apiV3Key"]).encode()).encrypt(nonce.encode(), _compact(plain).encode(), kind.encode())
    body = _compact({
        "id": f"0f3a2d7c-1b4e-5c6d-9e8f-{nonce.encode().hex()[:12]}", "create_time": "2024-01-01T08:00:00+08:00",
        "resource_type": "encrypt-resource", "event_type": event_type,
        "summary": "支付成功" if kind == "transaction" else "退款成功",
        "resource": {"original_type": kind, "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": base64.b64encode(cipher).decode(), "associated_data": kind, "nonce": nonce},
    }).encode("utf-8")
    key = serialization.load_pem_private_key(WECHATPAY_PRIVATE_KEY.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    header_nonce = hashlib.sha256(name.encode()).hexdigest()[:32]
    signature = key.sign(f"{SENT_AT}\n{header_nonce}\n".encode() + body + b"\n", padding.PKCS1v15(),
                         hashes.SHA256())  # PKCS#1 v1.5 is deterministic: the file is stable
    headers = {"content-type": "application/json", "wechatpay-serial": WECHATPAY_SERIAL,
               "wechatpay-timestamp": str(SENT_AT), "wechatpay-nonce": header_nonce,
               "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
               "wechatpay-signature": base64.b64encode(signature).decode()}
    return make_event(method="POST", source="wechatpay", account=ACCOUNT, body=body, headers=headers,
                      request_id=name, now_ms=SENT_AT * 1000)


def _wecom_event(name: str, message_xml: str) -> dict[str, Any]:
    """A WeCom callback encrypted for the demo CorpID (fixed random prefix and nonce)."""
    from dmhub_adapter.sources.msgcrypt import encrypt, sign

    secret = load_accounts().secret("wecom", ACCOUNT)
    assert secret is not None
    encrypted = encrypt(message_xml, str(secret["encodingAesKey"]), str(secret["corpId"]),
                        random16=b"0123456789abcdef")
    nonce = "1372623149"
    query = {"msg_signature": sign(str(secret["token"]), str(SENT_AT), nonce, encrypted),
             "timestamp": str(SENT_AT), "nonce": nonce}
    body = (f"<xml><ToUserName><![CDATA[{secret['corpId']}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]>"
            "</Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>").encode()
    return make_event(method="POST", source="wecom", account=ACCOUNT, body=body, raw_query=urlencode(query),
                      headers={"content-type": "text/xml"}, request_id=name, now_ms=SENT_AT * 1000)


def _youzan_legacy_body(msg: dict[str, Any]) -> bytes:
    """Youzan's legacy push: no Event-Sign header, ``sign`` = md5(client_id + msg + secret) in the body."""
    secret = load_accounts().secret("youzan", ACCOUNT)
    assert secret is not None
    encoded = quote(_compact(msg), safe="")
    envelope = json.loads(_youzan_body("trade_TradePaid", "TRADE_PAID", msg))
    envelope["msg"] = encoded
    envelope["sign"] = hashlib.md5(f"{secret['clientId']}{encoded}{secret['clientSecret']}".encode()).hexdigest()
    return _compact(envelope).encode("utf-8")


def events() -> dict[str, dict[str, Any]]:
    order = {
        "full_order_info": {
            "order_info": {"tid": "E20240101000000000001", "created": "2024-01-01 07:58:12",
                           "pay_time": "2024-01-01 08:00:00", "status": "WAIT_SELLER_SEND_GOODS"},
            "buyer_info": {"yz_open_id": "yzopen-demo-7f3a2c", "fans_type": 1},
            "pay_info": {"payment": "199.00", "total_fee": "199.00", "post_fee": "0.00"},
        }
    }
    doudian_paid = (
        b'[{"tag":"101","msg_id":"10000000000000000001","data":"{\\"p_id\\":4837328765348566675,'
        b'\\"shop_id\\":77977,\\"order_status\\":2,\\"pay_amount\\":1990,\\"pay_time\\":1630373504}"}]'
    )
    doudian_batch = _compact([
        {"tag": "100", "msg_id": "10000000000000000002",
         "data": _compact({"p_id": 4837328765348566676, "shop_id": 77977, "order_status": 1,
                           "order_amount": 5990, "create_time": SENT_AT - 120})},
        {"tag": "101", "msg_id": "10000000000000000003",
         "data": _compact({"p_id": 4837328765348566676, "shop_id": 77977, "order_status": 2,
                           "pay_amount": 5990, "pay_time": SENT_AT - 60})},
    ]).encode("utf-8")
    invoice = _compact({
        "type": "invoice.paid",
        "timestamp": "2024-01-01T00:00:00Z",
        "data": {"id": "inv_1001", "amount": 4200, "currency": "CNY",
                 "customer": {"id": "cus_501", "email": "Li.Lei@example.com", "name": "Li Lei"}},
    }).encode("utf-8")
    signup = _compact({
        "type": "member.signed_up",
        "timestamp": "2024-01-01T08:00:00+08:00",
        "data": {"id": "mem_77", "customer": {"id": "cus_502", "mobile": "13800000000"}},
    }).encode("utf-8")
    swh_headers = {"webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "webhook-timestamp": str(SENT_AT)}
    legacy_order = {"full_order_info": {**order["full_order_info"], "order_info": {
        **order["full_order_info"]["order_info"], "kdt_id": 10001, "update_time": "2024-01-01 08:00:00"}}}
    paid_at = "2024-01-01T07:59:59+08:00"
    transaction = {"mchid": "1900000001", "appid": "wxd678efh567hg6787", "out_trade_no": "CRM20240101000001",
                   "transaction_id": "4200000000202401010000000001", "trade_type": "JSAPI", "trade_state": "SUCCESS",
                   "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "", "success_time": paid_at,
                   "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                   "amount": {"total": 19900, "payer_total": 19900, "currency": "CNY", "payer_currency": "CNY"}}
    refund = {"mchid": "1900000001", "out_trade_no": "CRM20240101000001",
              "transaction_id": "4200000000202401010000000001", "out_refund_no": "RF20240101000001",
              "refund_id": "50000000382019052709732678859", "refund_status": "SUCCESS", "success_time": paid_at,
              "user_received_account": "招商银行信用卡0403",
              "amount": {"total": 19900, "refund": 19900, "payer_total": 19900, "payer_refund": 19900}}
    add_contact = (
        "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{SENT_AT}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmAJ2GCAAAXtWyujaWJHDDGi0mACHAAA]]>"
        "</ExternalUserID><State><![CDATA[crm_c7]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>")
    shopify_order = _compact({
        "id": 820982911946154508, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "email": "jon@example.com", "phone": "+15555550123", "created_at": "2023-12-31T18:58:00-05:00",
        "updated_at": "2023-12-31T19:00:00-05:00", "processed_at": "2023-12-31T18:58:00-05:00",
        "currency": "USD", "total_price": "199.00", "financial_status": "paid", "name": "#9999",
        "order_number": 9999, "customer": {"id": 115310627314723954, "email": "jon@example.com"},
    }).encode("utf-8")
    return {
        "youzan-legacy-trade-paid.json": _signed_legacy_event(_youzan_legacy_body(legacy_order)),
        "standard-webhooks-svix-invoice-paid.json": _signed_event(
            "standard-webhooks", invoice, {"svix-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f5S",
                                           "svix-timestamp": str(SENT_AT)}, request_id="svix-invoice-paid"),
        "wechatpay-paid.json": _wechatpay_event("wechatpay-paid", "TRANSACTION.SUCCESS", transaction,
                                                nonce="Nj1X4tqbXVcS"),
        "wechatpay-refund.json": _wechatpay_event("wechatpay-refund", "REFUND.SUCCESS", refund, nonce="Rf1X4tqbXVcS"),
        "wecom-add-contact.json": _wecom_event("wecom-add-contact", add_contact),
        "shopify-order-paid.json": _signed_event(
            "shopify", shopify_order, {"x-shopify-topic": "orders/paid", "x-shopify-shop-domain": "demo.myshopify.com",
                                       "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
                                       "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"},
            request_id="shopify-order-paid"),
        "youzan-trade-paid.json": _signed_event(
            "youzan", _youzan_body("trade_TradePaid", "TRADE_PAID", order), {"event-type": "trade_TradePaid"},
            request_id="youzan-trade-paid"),
        "youzan-test-message.json": _signed_event(
            "youzan", _youzan_body("trade_TradeCreate", "WAIT_BUYER_PAY", {"tid": "E20240101000000000001"},
                                   test=True), {}, request_id="youzan-test-message"),
        # Doudian's documented paid message, received a minute after its pay_time (the mapping
        # bounds a message's age by its own time).
        "doudian-order-paid.json": _signed_event("doudian", doudian_paid, {"app-id": "7000000000000000001"},
                                                 request_id="doudian-order-paid", sent_at=1630373564),
        "doudian-order-created-and-paid.json": _signed_event(
            "doudian", doudian_batch, {"app-id": "7000000000000000001"}, request_id="doudian-batch"),
        "standard-webhooks-invoice-paid.json": _signed_event(
            "standard-webhooks", invoice, swh_headers, request_id="swh-invoice-paid"),
        # A sender rotating keys: an old-key v1 entry and a v1a entry beside the valid one.
        "standard-webhooks-member-signed-up-rotated.json": _signed_event(
            "standard-webhooks", signup,
            {"webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X", "webhook-timestamp": str(SENT_AT)},
            request_id="swh-member-signed-up",
            extra_signatures=["v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                              "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "events"))
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    stale = []
    for name, event in events().items():
        text = json.dumps(event, ensure_ascii=False, indent=2) + "\n"
        path = out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)} (run scripts/make_config_source_events.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
