"""Attacks on tenancy, freshness, keeping and configuration (issue 14, items 1, 5, 6, 9b, 11, 13),
run over the local stack's sockets: the gateway, the DM Hub emulator and moto_server.

Each test is an attack that succeeded before the fix; it now asserts the refusal (or, for the
oversize record, that the authentic payload is kept).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
import yaml
from standardwebhooks.webhooks import Webhook

from dmhub_adapter.mapping.config import MappingConfigError
from dmhub_adapter.sources.registry import parse_source_mapping
from tests.e2e.conftest import RunningStack, start_stack, wait_for

pytestmark = pytest.mark.e2e

#: two Standard Webhooks tenants with their own keys (the first is the specification's sample)
SWH_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SWH_B = "whsec_" + "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
#: one Youzan app authorised by two shops: the same credentials, a different kdtId each
YOUZAN = {"clientId": "cid123", "clientSecret": "csecret456"}
DOUDIAN = {"appKey": "7000000000000000001", "appSecret": "ddsecret"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    tmp = tmp_path_factory.mktemp("security")
    accounts = {
        "dmhub": {"appId": "demo-app", "secret": "demo-secret"},
        "accounts": [
            {"source": "standard-webhooks", "account": "tenant-a", "secret": {"signingSecret": SWH_A}},
            {"source": "standard-webhooks", "account": "tenant-b", "secret": {"signingSecret": SWH_B}},
            {"source": "youzan", "account": "shop-a", "secret": {**YOUZAN, "kdtId": "10001"}},
            {"source": "youzan", "account": "shop-b", "secret": {**YOUZAN, "kdtId": "20002"}},
            {"source": "doudian", "account": "demo", "secret": DOUDIAN},
            {"source": "taobao", "account": "demo", "secret": {"appKey": "12345678", "appSecret": "helloworld"}},
        ],
    }
    path = tmp / "accounts.yaml"
    path.write_text(yaml.safe_dump(accounts), encoding="utf-8")
    running = start_stack(tmp, "--accounts", str(path))
    try:
        yield running
    finally:
        running.stop()


def post(stack: RunningStack, source: str, account: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{stack.gateway}/webhooks/{source}/{account}", content=body,
                      headers={"content-type": "application/json", **headers}, timeout=60)


def aws(stack: RunningStack, service: str) -> Any:
    return boto3.session.Session(region_name="eu-west-1").client(service, endpoint_url=stack.info["moto"])


def unmapped_records(stack: RunningStack) -> list[dict[str, Any]]:
    sqs = aws(stack, "sqs")
    url = stack.info["environment"]["UNMAPPED_QUEUE_URL"]
    out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


# ---- item 1: externalIds are namespaced per source and account -------------------------------


def swh(secret: str, msg_id: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, body)  # the reference implementation signs
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                  "webhook-signature": signature}


def test_tenant_b_reusing_tenant_as_webhook_id_does_not_replace_its_event(stack: RunningStack) -> None:
    msg_id = f"msg_{time.time_ns()}"
    paid = {"type": "invoice.paid", "timestamp": datetime.now(UTC).isoformat(),
            "data": {"id": "inv_1", "customer": {"id": "cus_a"}}}
    refunded = {"type": "invoice.refunded", "timestamp": datetime.now(UTC).isoformat(),
                "data": {"id": "inv_1", "customer": {"id": "cus_mallory"}}}
    assert post(stack, "standard-webhooks", "tenant-a", *swh(SWH_A, msg_id, paid)).status_code == 200
    assert post(stack, "standard-webhooks", "tenant-b", *swh(SWH_B, msg_id, refunded)).status_code == 200

    def both() -> list[dict[str, Any]] | None:
        found = [e for e in stack.emulator_state()["events"] if msg_id in str(e.get("externalId"))]
        return found if len(found) == 2 else None

    events = {e["externalId"]: e for e in wait_for(both, timeout=30, what="both tenants' events")}
    assert events[f"standard-webhooks:tenant-a:swh|{msg_id}"]["event"] == "c_invoice_paid"
    assert events[f"standard-webhooks:tenant-b:swh|{msg_id}"]["event"] == "c_invoice_refunded"


# ---- items 5 and 6: Youzan pushes are bound to their time and their shop --------------------


def youzan(kdt_id: int, version: int, order: str) -> tuple[bytes, dict[str, str]]:
    msg = {"full_order_info": {"buyer_info": {"yz_open_id": "yzopen-sec"},
                               "pay_info": {"payment": "9.90"}}}
    from urllib.parse import quote

    envelope = {"client_id": YOUZAN["clientId"], "id": order, "kdt_id": kdt_id, "type": "trade_TradePaid",
                "status": "TRADE_PAID", "version": version, "test": False,
                "msg": quote(json.dumps(msg), safe="")}
    body = json.dumps(envelope).encode()
    sign = hashlib.md5(YOUZAN["clientId"].encode() + body + YOUZAN["clientSecret"].encode()).hexdigest()
    return body, {"event-sign": sign}


def test_a_push_captured_at_one_shop_is_refused_at_another(stack: RunningStack) -> None:
    order = f"E{time.time_ns()}"
    captured = youzan(10001, int(time.time()), order)
    moved = post(stack, "youzan", "shop-b", *captured)
    assert moved.status_code == 403, moved.text
    assert post(stack, "youzan", "shop-a", *captured).status_code == 200
    wait_for(lambda: [e for e in stack.emulator_state()["events"] if order in str(e.get("externalId"))],
             timeout=30, what="shop A's event")
    assert not [e for e in stack.emulator_state()["events"] if "youzan:shop-b:" in str(e.get("externalId"))]


def test_a_youzan_push_older_than_its_max_age_is_refused(stack: RunningStack) -> None:
    six_days_ago = int(time.time()) - 6 * 86400
    response = post(stack, "youzan", "shop-a", *youzan(10001, six_days_ago, f"E{time.time_ns()}"))
    assert response.status_code == 401 and "stale" in response.text


# ---- item 9b: an oversize unmapped record is kept by reference ---------------------------------


def test_an_oversize_unmapped_record_is_kept_in_the_bucket(stack: RunningStack) -> None:
    # 28k messages a mapping cannot use: each gets a reason, the record is ~2.5 MB
    body = b"[" + b",".join([b"{}"] * 28_000) + b"]"
    sign = hashlib.md5(DOUDIAN["appKey"].encode() + body + DOUDIAN["appSecret"].encode()).hexdigest()
    response = post(stack, "doudian", "demo", body, {"event-sign": sign})
    assert response.status_code == 200, response.text
    records = wait_for(lambda: unmapped_records(stack), timeout=20, what="the unmapped pointer record")
    from dmhub_adapter.ingest.unmapped import resolve_record

    (pointer,) = [r for r in records if r.get("source") == "doudian"]
    assert pointer["payload_ref"]["bucket"] == stack.info["environment"]["UNMAPPED_BUCKET"]
    record = resolve_record(pointer, s3=aws(stack, "s3"))
    assert record["payload"].encode() == body and len(record["reasons"]) == 28_000


# ---- item 11: unsigned request values cannot make externalId -----------------------------------


def test_check_config_refuses_an_unsigned_delivery_id_in_external_id() -> None:
    mapping = {
        "source": "acme", "adapter": "generic",
        "verification": {"scheme": "signature", "algorithm": "hmac-sha256", "key": {"secret": "key"},
                         "signature": {"header": "x-sig"}, "timestamp": {"header": "x-ts"},
                         "signed": ["timestamp", "body"]},
        "options": {"requestValues": {"deliveryId": {"header": "x-delivery-id"}}},
        "rules": [{"name": "all", "event": "c_x", "externalId": {"template": "acme|{_request.deliveryId}"},
                   "date": {"path": "at", "convert": "unix_seconds"}, "identity": {"type": "t", "value": "u"}}],
    }
    with pytest.raises(MappingConfigError, match="x-delivery-id"):
        parse_source_mapping(yaml.safe_dump(mapping), "<acme>")


# ---- item 13: Taobao gets the 1 MiB body its docs promise ---------------------------------------


def test_a_taobao_body_over_256_kib_reaches_the_signature_check(stack: RunningStack) -> None:
    body = json.dumps({"padding": "x" * 300_000}).encode()
    response = post(stack, "taobao", "demo", body, {})
    # before: 413 from the global 256 KiB cap; now Taobao's own 1 MiB cap lets it through to 401
    assert response.status_code == 401, response.text
    assert httpx.post(f"{stack.gateway}/webhooks/taobao/demo", content=b"x" * (1024 * 1024 + 1),
                      timeout=60).status_code == 413
