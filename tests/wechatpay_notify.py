"""WeChat Pay APIv3 notifications built the way WeChat Pay's docs describe, with the
``cryptography`` package directly (not the adapter's code): AES-256-GCM over the resource with
the APIv3 key, RSASSA-PKCS1-v1_5 SHA-256 over ``timestamp\\nnonce\\nbody\\n``. Shared by the unit,
security and e2e tests; the builder itself is checked against the independent ``wechatpayv3``
SDK in tests/unit/test_wechatpay.py."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

API_V3_KEY = "TestApiV3Key0123456789abcdefghij"
SERIAL = "PUB_KEY_ID_0000000000000000000000000000000002"


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey

    @property
    def public_pem(self) -> str:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    @property
    def private_pem(self) -> str:
        return self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()).decode("ascii")


def new_key_pair() -> KeyPair:
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def encrypt_resource(plain: dict[str, Any], *, key: str = API_V3_KEY, associated_data: str = "transaction",
                     nonce: str | None = None, original_type: str = "transaction") -> dict[str, Any]:
    nonce = nonce or secrets.token_urlsafe(9)[:12]
    data = json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    cipher = AESGCM(key.encode("utf-8")).encrypt(nonce.encode("utf-8"), data, associated_data.encode("utf-8"))
    return {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(cipher).decode("ascii"), "associated_data": associated_data,
            "nonce": nonce}


def sign(private: rsa.RSAPrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
    return base64.b64encode(private.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def transaction(out_trade_no: str = "CRM20250101000001", *, openid: str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                success_time: str = "2025-01-01T08:00:05+08:00", total: int = 100) -> dict[str, Any]:
    return {"mchid": "1900000001", "appid": "wxd678efh567hg6787", "out_trade_no": out_trade_no,
            "transaction_id": "4200000000202501010000000001", "trade_type": "JSAPI", "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "", "success_time": success_time,
            "payer": {"openid": openid},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}}


def refund(status: str = "SUCCESS", *, out_refund_no: str = "RF20250101000001") -> dict[str, Any]:
    plain: dict[str, Any] = {
        "mchid": "1900000001", "out_trade_no": "CRM20250101000001", "transaction_id": "4200000000202501010000000001",
        "out_refund_no": out_refund_no, "refund_id": "50000000382019052709732678859", "refund_status": status,
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": 100, "refund": 100, "payer_total": 100, "payer_refund": 100}}
    if status == "SUCCESS":
        plain["success_time"] = "2025-01-02T10:00:00+08:00"
    return plain


def notification(private: rsa.RSAPrivateKey, plain: dict[str, Any], *, timestamp: int,
                 event_type: str = "TRANSACTION.SUCCESS", serial: str = SERIAL, key: str = API_V3_KEY,
                 notification_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a notification as WeChat Pay sends it."""
    kind = "refund" if event_type.startswith("REFUND.") else "transaction"
    envelope = {"id": notification_id or "0f3a2d7c-1b4e-5c6d-9e8f-" + secrets.token_hex(6),
                "create_time": "2025-01-01T08:00:06+08:00", "resource_type": "encrypt-resource",
                "event_type": event_type, "summary": "支付成功" if kind == "transaction" else "退款状态",
                "resource": encrypt_resource(plain, key=key, associated_data=kind, original_type=kind)}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    nonce = secrets.token_hex(16)
    headers = {"Wechatpay-Serial": serial, "Wechatpay-Timestamp": str(timestamp), "Wechatpay-Nonce": nonce,
               "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
               "Wechatpay-Signature": sign(private, str(timestamp), nonce, body), "Content-Type": "application/json"}
    return headers, body
