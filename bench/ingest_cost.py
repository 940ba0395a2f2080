"""P1: warm ingest cost per event, library path against an inline floor.

Library path: ``source.receive`` (verify, decrypt, parse) + ``map_payload`` + the queued
event the pipeline builds (``queued_event``, checked without pydantic). Floor: the same
payload through the bare steps written here (hashlib/hmac, cryptography AES, defusedxml/json,
one pydantic validate), with what the mapping file decides (event name, fields, externalId)
hard-coded. No AWS on either side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml.ElementTree import fromstring

from dmhub_adapter.ingest.pipeline import queued_event
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.model.customer_event import SEED_ATTRIBUTE_BUDGET, QueuedEvent
from dmhub_adapter.sources.base import Account
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter.webhook import WebhookRequest
from dmhub_adapter_tools.local.samples import build_sample

WECHAT_SECRET = {
    "token": "pamtest",
    "encodingAesKey": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "appId": "wxb11529c136998cb6",
}
TAOBAO_SECRET = {"appKey": "12345678", "appSecret": "helloworld"}
GMT8 = timezone(timedelta(hours=8))


@dataclass
class Case:
    name: str
    library: Callable[[], Any]
    floor: Callable[[], Any]
    #: the signed request both sides take
    request: WebhookRequest


def _request(source: str, sample: Any, received_at: float) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        source=source,
        account="demo",
        body=sample.body,
        query=dict(parse_qsl(sample.raw_query, keep_blank_values=True)),
        raw_query=sample.raw_query,
        headers=dict(sample.headers),
        received_at=received_at,
        request_id="bench",
    )


def _library(source_name: str, request: WebhookRequest, secret: dict[str, str]) -> Callable[[], list[QueuedEvent]]:
    source = source_for(source_name)
    assert source is not None
    account = Account(source_name, "demo", source.mapping, secret)
    meta = {"source": source_name, "account": "demo", "received_at": int(request.received_at)}

    def run() -> list[QueuedEvent]:
        inbound = source.receive(request, account)
        events = []
        for result in map_payload(source.mapping, inbound.messages, meta):
            for mapped in result.events:
                events.append(queued_event(source_name, request, mapped, SEED_ATTRIBUTE_BUDGET))
        assert len(events) == 1
        return events

    return run


# -- floors ---------------------------------------------------------------------------------------


def _sha1_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wechat_floor(request: WebhookRequest, secret: dict[str, str]) -> Callable[[], QueuedEvent]:
    token, app_id = secret["token"], secret["appId"].encode()

    def run() -> QueuedEvent:
        q = request.query
        ts, nonce = q["timestamp"], q["nonce"]
        if not hmac.compare_digest(_sha1_sorted(token, ts, nonce), q["signature"]):
            raise ValueError("signature")
        envelope = fromstring(request.body)
        encrypted = envelope.findtext("Encrypt") or ""
        if not hmac.compare_digest(_sha1_sorted(token, ts, nonce, encrypted), q["msg_signature"]):
            raise ValueError("msg_signature")
        key = base64.b64decode(secret["encodingAesKey"] + "=")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
        plain = plain[: -plain[-1]]
        length = int.from_bytes(plain[16:20], "big")
        if not hmac.compare_digest(plain[20 + length :], app_id):
            raise ValueError("appid")
        fields = {child.tag: child.text or "" for child in fromstring(plain[20 : 20 + length])}
        external = "|".join(fields[k] for k in ("ToUserName", "FromUserName", "CreateTime", "Event", "EventKey"))
        return QueuedEvent.model_validate(
            {
                "source": "wechat",
                "account": "demo",
                "claim_key": f"wechat#demo#{external}",
                "trace_id": request.request_id,
                "rule": "follow_qr",
                "identity": {"type": "wechat", "value": fields["FromUserName"], "create": True},
                "event": {
                    "event": "c_wechat_follow",
                    "date": _utc(int(fields["CreateTime"])),
                    "source": "微信",
                    "externalId": f"wechat:demo:{external}",
                    "account": fields["ToUserName"],
                    "scene": fields["EventKey"].removeprefix("qrscene_"),
                    "ticket": fields["Ticket"],
                },
            }
        )

    return run


def taobao_floor(request: WebhookRequest, secret: dict[str, str]) -> Callable[[], QueuedEvent]:
    app_secret = secret["appSecret"]

    def run() -> QueuedEvent:
        params = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        sign = params.pop("sign")
        text = app_secret + "".join(k + v for k, v in sorted(params.items())) + request.body.decode() + app_secret
        if not hmac.compare_digest(hashlib.md5(text.encode()).hexdigest().upper(), sign):
            raise ValueError("sign")
        stamp = datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=GMT8)
        if abs(stamp.timestamp() - request.received_at) > 600:
            raise ValueError("timestamp")
        message = json.loads(request.body)
        content = json.loads(message["content"])
        tid, oid = str(content["tid"]), str(content["oid"])
        external = f"{message['topic']}|{tid}|{oid}"
        published = datetime.strptime(message["pub_time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=GMT8)
        return QueuedEvent.model_validate(
            {
                "source": "taobao",
                "account": "demo",
                "claim_key": f"taobao#demo#{external}",
                "trace_id": request.request_id,
                "rule": "order_paid",
                "identity": {"type": "taobao-openuid", "value": content["buyer_open_uid"], "create": True},
                "event": {
                    "event": "c_taobao_order_paid",
                    "date": _utc(published.timestamp()),
                    "source": "淘宝",
                    "externalId": f"taobao:demo:{external}",
                    "tid": tid,
                    "payment": content["payment"],
                    "oid": oid,
                },
                "attribute_kinds": {"payment": "amount"},
            }
        )

    return run


def cases() -> list[Case]:
    now = time.time()
    wechat = _request("wechat", build_sample("wechat-follow", WECHAT_SECRET, now=now, openid="oBench0001"), now)
    taobao = _request("taobao", build_sample("taobao-paid", TAOBAO_SECRET, now=now), now)
    return [
        Case("WeChat follow, safe mode (AES)", _library("wechat", wechat, WECHAT_SECRET),
             wechat_floor(wechat, WECHAT_SECRET), wechat),
        Case("Taobao payment, md5-signed relay", _library("taobao", taobao, TAOBAO_SECRET),
             taobao_floor(taobao, TAOBAO_SECRET), taobao),
    ]


def check_equivalent(case: Case) -> None:
    """The floor must produce the event the library produces, or the comparison means nothing."""
    library = case.library()[0].to_message()
    floor = case.floor().to_message()
    if library != floor:
        raise AssertionError(f"{case.name}: the floor does not build the library's event:\n{library}\n{floor}")


def measure(number: int = 2000, repeat: int = 7) -> list[tuple[str, float, float]]:
    """(case, library seconds per event, floor seconds per event).

    The library's and the floor's timed loops take turns, ``repeat`` times each, and each side's
    fastest loop is its figure: other processes on the machine can only add time to a loop, so
    the minimum is the estimate least distorted by them (as ``timeit`` recommends), and taking
    turns keeps a change of load from landing on one side only."""
    results = []
    for case in cases():
        check_equivalent(case)
        for _ in range(max(1, number // 10)):  # warm-up
            case.library()
            case.floor()
        library, floor = [], []
        for _ in range(repeat):
            library.append(_loop(case.library, number))
            floor.append(_loop(case.floor, number))
        results.append((case.name, min(library), min(floor)))
    return results


def _loop(fn: Callable[[], Any], number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - started) / number
