"""Youzan, Doudian and Standard Webhooks through the real ingest handler against moto, straight
from the events/ samples (each carries its request time, so its signature and timestamp hold)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dmhub_adapter_tools.local.accounts import load_accounts
from tests.integration.ingest.conftest import Ingest, Response, lambda_context

EVENTS = Path(__file__).resolve().parents[3] / "events"
DEMO = load_accounts(None)
SOURCES = ("youzan", "doudian", "standard-webhooks")


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    event["requestContext"]["requestId"] = uuid.uuid4().hex
    return event


def call(ingest: Ingest, event: dict[str, Any]) -> Response:
    result = ingest.app.lambda_handler(event, lambda_context())
    return Response(result["statusCode"], result["headers"], result["body"])


@pytest.fixture
def accounts(ingest: Ingest) -> Ingest:
    for source in SOURCES:
        ingest.put_account(source, "demo", DEMO.secret(source, "demo") or {})
    return ingest


@pytest.mark.parametrize(
    ("name", "answer", "external_ids"),
    [
        ("youzan-trade-paid", {"code": 0, "msg": "success"}, ["youzan|10001|trade_tradepaid|E20240101000000000001"]),
        ("doudian-order-created-and-paid", {"code": 0, "msg": "success"},
         ["doudian|100|4837328765348566676", "doudian|101|4837328765348566676"]),
        ("standard-webhooks-invoice-paid", {"received": True, "enqueued": 1, "duplicates": 0},
         ["swh|msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"]),
    ],
)
def test_samples_are_enqueued_once_and_answered_in_dialect(
    accounts: Ingest, name: str, answer: dict[str, Any], external_ids: list[str]
) -> None:
    response = call(accounts, sample(name))
    assert response.status == 200, response.body
    assert response.json() == answer
    queued = accounts.events()
    source = name.split("-order")[0].split("-trade")[0].split("-invoice")[0]
    # DM Hub sees the mapping's key behind the source and account; the claim keeps the bare key.
    assert sorted(m["body"]["event"]["externalId"] for m in queued) == [f"{source}:demo:{x}" for x in external_ids]
    for external_id in external_ids:
        claim = accounts.claim(external_id, source=source, account="demo")
        assert claim is not None and claim["status"] == "QUEUED"
    again = call(accounts, sample(name))
    assert again.status == 200
    assert accounts.events() == []


def test_youzan_test_message_is_acknowledged_without_events(accounts: Ingest) -> None:
    response = call(accounts, sample("youzan-test-message"))
    assert (response.status, response.json()) == (200, {"code": 0, "msg": "success"})
    assert accounts.events() == [] and accounts.unmapped() == []


@pytest.mark.parametrize("name", ["youzan-trade-paid", "doudian-order-paid", "standard-webhooks-invoice-paid"])
def test_bad_and_missing_signatures_are_401(accounts: Ingest, name: str) -> None:
    event = sample(name)
    header = next(h for h in ("event-sign", "webhook-signature") if h in event["headers"])
    event["headers"][header] = "v1,AAAA" if header == "webhook-signature" else "0" * 32
    assert call(accounts, event).status == 401
    del event["headers"][header]
    assert call(accounts, event).status == 401
    assert accounts.events() == []


def test_youzan_refusals_speak_youzan(accounts: Ingest) -> None:
    event = sample("youzan-trade-paid")
    event["headers"]["event-sign"] = "0" * 32
    response = call(accounts, event)
    assert response.status == 401
    assert response.json()["code"] == 401


def test_stale_standard_webhook_is_401(accounts: Ingest) -> None:
    event = sample("standard-webhooks-invoice-paid")
    event["requestContext"]["timeEpoch"] += 301_000
    assert call(accounts, event).status == 401


def test_signed_but_malformed_body_is_400(accounts: Ingest) -> None:
    secret = DEMO.secret("youzan", "demo") or {}
    body = b'{"type": "trade_TradePaid", broken'
    event = sample("youzan-trade-paid")
    event["body"] = body.decode()
    event["headers"]["event-sign"] = hashlib.md5(
        secret["clientId"].encode() + body + secret["clientSecret"].encode()).hexdigest()
    assert call(accounts, event).status == 400


def test_oversize_body_is_413(accounts: Ingest) -> None:
    event = sample("doudian-order-paid")
    event["body"] = "[" + " " * (300 * 1024) + "]"
    assert call(accounts, event).status == 413


def test_unknown_source_and_unknown_account_are_404(accounts: Ingest) -> None:
    event = sample("youzan-trade-paid")
    event["pathParameters"] = {"source": "weidian", "account": "demo"}
    assert call(accounts, event).status == 404
    event["pathParameters"] = {"source": "youzan", "account": "nobody"}
    assert call(accounts, event).status == 404


def test_unmapped_authentic_message_is_kept(accounts: Ingest) -> None:
    from dmhub_adapter_tools.local.apigw_event import make_event

    secret = DEMO.secret("doudian", "demo") or {}
    # a fresh message (Doudian messages are bounded by their own time) of a tag no rule knows
    body = b'[{"tag":"999","msg_id":"1","data":"{\\"p_id\\":1,\\"update_time\\":%d}"}]' % int(time.time())
    signature = hashlib.md5(secret["appKey"].encode() + body + secret["appSecret"].encode()).hexdigest()
    event = make_event(method="POST", source="doudian", account="demo", body=body,
                       headers={"content-type": "application/json", "event-sign": signature},
                       request_id=uuid.uuid4().hex)
    response = call(accounts, event)
    assert response.status == 200
    assert accounts.events() == []
    [kept] = accounts.unmapped()
    assert "no rule matched" in json.dumps(kept["body"])
