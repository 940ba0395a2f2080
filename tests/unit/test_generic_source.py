"""The config-only adapter: payload formats, caps, verify-before-parse, replies, handshake,
request values, and check-config errors naming file and field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmhub_adapter.errors import BadRequest, MethodNotAllowed, PayloadTooLarge, Unauthorized, Unavailable
from dmhub_adapter.mapping.config import MappingConfigError
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.sources.base import Account, IngestOutcome
from dmhub_adapter.sources.generic import GenericSource, build
from dmhub_adapter.sources.registry import parse_source_mapping
from dmhub_adapter.webhook import WebhookRequest
from dmhub_adapter_tools.cli import main as cli_main

RULES: list[dict[str, Any]] = [
    {"name": "order", "when": "kind == 'order'", "event": "c_order", "externalId": {"template": "o|{id}"},
     "date": {"path": "at", "convert": "unix_seconds"}, "identity": {"type": "demo-user", "value": "user"}},
]
SECRET = {"token": "s3cret"}
MD5_TOKEN = {
    "scheme": "signature",
    "algorithm": "md5",
    "signature": {"header": "x-sign"},
    "signed": ["body", {"secret": "token"}],
    "replayWindow": {"none": "these tests exercise the signature alone"},
}


def make_source(**blocks: Any) -> GenericSource:
    data: dict[str, Any] = {"source": "demo", "adapter": "generic", "rules": RULES,
                            "verification": {"scheme": "none"}, **blocks}
    data = {k: v for k, v in data.items() if v is not None}
    return build(parse_source_mapping(yaml.safe_dump(data, allow_unicode=True), "<demo>"))


def request(body: bytes, headers: dict[str, str] | None = None, *, method: str = "POST",
            query: dict[str, str] | None = None, request_id: str = "req-1") -> WebhookRequest:
    return WebhookRequest(method=method, source="demo", account="a", body=body, headers=headers or {},
                          query=query or {}, received_at=1_700_000_000, request_id=request_id)


def account(source: GenericSource, secret: dict[str, Any] | None = SECRET) -> Account:
    return Account("demo", "a", source.mapping, secret)


def md5_signed(body: bytes, **headers: str) -> WebhookRequest:
    return request(body, {"x-sign": hashlib.md5(body + b"s3cret").hexdigest(), **headers})


# ---- formats ---------------------------------------------------------------------------------


def test_json_object_and_array_and_split() -> None:
    one = make_source()
    inbound = one.receive(request(b'{"kind":"order","id":1,"user":"u","at":1700000000}'), account(one))
    assert inbound.messages == [{"kind": "order", "id": 1, "user": "u", "at": 1700000000}]
    assert inbound.payload_type == "application/json"
    array = one.receive(request(b'[{"kind":"a"},{"kind":"b"}]'), account(one))
    assert [m["kind"] for m in array.messages] == ["a", "b"]
    split = make_source(messages="events")
    inbound = split.receive(request(b'{"events":[{"kind":"x"},{"kind":"y"}]}'), account(split))
    assert [m["kind"] for m in inbound.messages] == ["x", "y"]


def test_form_bodies() -> None:
    source = make_source(format="form")
    body = b"kind=order&id=7&user=%E5%BC%A0%E4%B8%89&at=1700000000&note=a+b&empty="
    inbound = source.receive(request(body), account(source))
    assert inbound.messages == [{"kind": "order", "id": "7", "user": "张三", "at": "1700000000",
                                 "note": "a b", "empty": ""}]
    assert inbound.payload_type == "application/x-www-form-urlencoded"
    gbk = make_source(format="form")
    inbound = gbk.receive(request(b"user=%D5%C5", {"content-type": "application/x-www-form-urlencoded; "
                                                              "charset=gbk"}), account(gbk))
    assert inbound.messages[0]["user"] == "张"
    assert inbound.payload_type.endswith("charset=gbk")


def test_xml_bodies() -> None:
    source = make_source(format="xml")
    body = (b"<xml><kind>order</kind><id>9</id><user><![CDATA[u-1]]></user><items><sku>A</sku><sku>B</sku></items>"
            b"<empty/></xml>")
    inbound = source.receive(request(body), account(source))
    assert inbound.messages == [{"kind": "order", "id": "9", "user": "u-1",
                                 "items": {"sku": ["A", "B"]}, "empty": ""}]
    results = map_payload(source.mapping, [{**inbound.messages[0], "at": 1700000000}])
    assert results[0].status == "mapped"


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("json", b"{not json"),
        ("json", b"42"),
        ("json", b'["a", 1]'),
        ("json", b"\xff\xfe"),
        ("json", b"   "),
        ("form", b"just-text"),
        ("form", b"=value"),
        ("xml", b"<xml><open></xml>"),
        ("xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'),
    ],
)
def test_malformed_bodies_are_400(fmt: str, body: bytes) -> None:
    source = make_source(format=fmt)
    with pytest.raises(BadRequest) as info:
        source.receive(request(body), account(source))
    assert info.value.status == 400
    with pytest.raises(BadRequest):
        source.parse_unverified(request(body), account(source, None))


def test_unknown_charset_is_400() -> None:
    source = make_source()
    with pytest.raises(BadRequest, match="charset"):
        source.receive(request(b"{}", {"content-type": "application/json; charset=x-nope"}), account(source))


def test_body_cap_from_options_else_the_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    capped = make_source(options={"maxBodyBytes": 64})
    body = json.dumps({"kind": "order", "pad": "x" * 64}).encode()
    with pytest.raises(PayloadTooLarge) as info:
        capped.receive(request(body), account(capped))
    assert info.value.status == 413
    with pytest.raises(PayloadTooLarge):
        capped.parse_unverified(request(body), account(capped, None))
    # Without a cap of its own the source takes what the pipeline let through: MAX_BODY_BYTES is
    # the pipeline's (tests/integration/ingest/test_handler.py), read once at init, not per request.
    default = make_source()
    monkeypatch.setenv("MAX_BODY_BYTES", "32")
    assert default.receive(request(body), account(default)).messages[0]["kind"] == "order"


# ---- verification through the adapter ---------------------------------------------------------


def test_signed_source_accepts_a_good_signature_and_refuses_the_rest() -> None:
    source = make_source(verification=MD5_TOKEN)
    body = b'{"kind":"order"}'
    assert source.receive(md5_signed(body), account(source)).messages == [{"kind": "order"}]
    with pytest.raises(Unauthorized, match="missing signature"):
        source.receive(request(body), account(source))
    with pytest.raises(Unauthorized, match="does not match"):
        source.receive(request(body, {"x-sign": "0" * 32}), account(source))
    with pytest.raises(Unauthorized):
        source.receive(md5_signed(body), account(source, {"token": "other"}))


def test_unauthenticated_malformed_body_is_401_not_400() -> None:
    # Nothing is parsed before the signature holds: an attacker learns nothing from parse errors.
    source = make_source(verification=MD5_TOKEN)
    with pytest.raises(Unauthorized):
        source.receive(request(b"{broken", {"x-sign": "0" * 32}), account(source))
    with pytest.raises(BadRequest):
        source.receive(md5_signed(b"{broken"), account(source))


def test_parse_unverified_skips_the_signature() -> None:
    source = make_source(verification=MD5_TOKEN)
    assert source.parse_unverified(request(b'{"kind":"x"}'), account(source, None)).messages == [{"kind": "x"}]


def test_signature_in_a_form_field_with_sorted_fields() -> None:
    verification = {
        "scheme": "signature",
        "algorithm": "hmac-sha256",
        "key": {"secret": "token"},
        "signature": {"field": "sign", "encoding": "hex-upper"},
        "signed": [{"sortedParams": {"from": "fields", "exclude": ["sign"], "assign": "=", "join": "&"}}],
        "replayWindow": {"none": "these tests exercise the signature alone"},
    }
    source = make_source(format="form", verification=verification)
    import hmac as hmac_module

    expected = hmac_module.new(b"s3cret", b"at=1&kind=order", hashlib.sha256).hexdigest().upper()
    inbound = source.receive(request(f"kind=order&at=1&sign={expected}".encode()), account(source))
    assert inbound.messages[0]["sign"] == expected
    with pytest.raises(Unauthorized):
        source.receive(request(f"kind=refund&at=1&sign={expected}".encode()), account(source))


def test_a_file_without_verification_maps_but_refuses_requests() -> None:
    source = make_source(verification=None)
    assert source.parse_unverified(request(b'{"kind":"x"}'), account(source, None)).messages
    with pytest.raises(Unavailable, match="scheme: none") as info:
        source.receive(request(b'{"kind":"x"}'), account(source))
    assert info.value.status == 503


# ---- request values, handshake --------------------------------------------------------------


def test_request_values_reach_every_message() -> None:
    source = make_source(options={"requestValues": {"deliveryId": {"header": "X-Delivery"},
                                                    "tenant": {"query": "t"}}})
    inbound = source.receive(request(b'[{"kind":"a"},{"kind":"b"}]', {"x-delivery": "d-1"}, query={"t": "acme"}),
                             account(source))
    assert [m["_request"] for m in inbound.messages] == [{"deliveryId": "d-1", "tenant": "acme"}] * 2
    assert inbound.context["request"] == {"deliveryId": "d-1", "tenant": "acme"}
    assert inbound.payload == b'[{"kind":"a"},{"kind":"b"}]'


def test_handshake_echo() -> None:
    source = make_source(options={"handshake": {"query": "challenge", "contentType": "application/json",
                                                "body": '{"challenge":"{value}"}'}})
    response = source.handshake(request(b"", method="GET", query={"challenge": 'ab"c'}), account(source))
    assert response.status == 200
    assert json.loads(response.body) == {"challenge": 'ab"c'}
    with pytest.raises(BadRequest):
        source.handshake(request(b"", method="GET"), account(source))
    with pytest.raises(BadRequest):
        source.handshake(request(b"", method="GET", query={"challenge": "x" * 600}), account(source))
    with pytest.raises(MethodNotAllowed):
        make_source().handshake(request(b"", method="GET"), account(source))


# ---- replies --------------------------------------------------------------------------------


def test_default_replies_are_json() -> None:
    source = make_source()
    ok = source.reply(request(b""), IngestOutcome(enqueued=2, duplicates=1))
    assert (ok.status, json.loads(ok.body)) == (200, {"success": True, "enqueued": 2, "duplicates": 1})
    refused = source.error_reply(request(b""), Unauthorized("signature does not match"))
    assert refused.status == 401
    assert json.loads(refused.body) == {"error": "unauthorized", "message": "signature does not match"}


def test_reply_templates_for_success_every_error_and_one_kind() -> None:
    source = make_source(reply={
        "success": {"body": '{"code":0,"msg":"success","n":{enqueued}}'},
        "error": {"body": '{"code":{status},"msg":"{message}","id":"{requestId}"}'},
        "errors": {"payload_too_large": {"status": 200, "contentType": "text/plain", "body": "too big: {message}"}},
    })
    ok = source.reply(request(b""), IngestOutcome(enqueued=3))
    assert (ok.status, ok.content_type, json.loads(ok.body)) == (200, "application/json",
                                                                 {"code": 0, "msg": "success", "n": 3})
    refused = source.error_reply(request(b""), Unauthorized('bad "sig"\n'))
    assert refused.status == 401
    assert json.loads(refused.body) == {"code": 401, "msg": 'bad "sig"\n', "id": "req-1"}
    big = source.error_reply(None, PayloadTooLarge("over 10"))
    assert (big.status, big.content_type, big.body) == (200, "text/plain", "too big: over 10")


# ---- check-config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        ({"verification": {**MD5_TOKEN, "algorithm": "sha3"}}, "field 'verification.algorithm': unknown algorithm"),
        ({"verification": {"scheme": "signature", "algorithm": "hmac-sha1"}}, "field 'verification.signature'"),
        ({"verification": {}}, "field 'verification.scheme': required"),
        ({"reply": {"success": {"body": "{oops"}}}, "field 'reply.success'"),
        ({"reply": {"success": {"body": "{enqueued} {nope}"}}}, "unknown placeholder(s) ['nope']"),
        ({"reply": {"errors": {"teapot": {"body": "x"}}}}, "unknown error kind(s) ['teapot']"),
        ({"reply": {"error": {"body": "x", "status": 99}}}, "field 'reply.error.status'"),
        ({"options": {"maxBodyBytes": 0}}, "field 'options.maxBodyBytes'"),
        ({"options": {"maxBodyByte": 10}}, "field 'options.maxBodyByte'"),
        ({"options": {"requestValues": {"a-b": {"header": "x"}}}}, "field 'options.requestValues'"),
        ({"options": {"handshake": {"body": "{value}"}}}, "field 'options.handshake.query'"),
    ],
)
def test_bad_blocks_fail_at_load(blocks: dict[str, Any], expected: str) -> None:
    with pytest.raises(MappingConfigError) as info:
        make_source(**blocks)
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_check_config_names_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"source": "fine", "adapter": "generic", "rules": RULES, "verification": {"scheme": "none"}}
    bad = {**good, "source": "broken", "verification": {**MD5_TOKEN, "algorithm": "sha3"}}
    incomplete = {**good, "source": "half", "verification": {"scheme": "signature", "algorithm": "md5"}}
    for data in (good, bad, incomplete):
        (tmp_path / f"{data['source']}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    assert cli_main(["check-config", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'fine.yaml'}: ok" in out
    assert f"{tmp_path / 'broken.yaml'}: invalid" in err
    assert "field 'verification.algorithm': unknown algorithm 'sha3'" in err
    assert f"{tmp_path / 'half.yaml'}: invalid" in err
    assert "field 'verification.signature': Field required" in err
    assert "field 'verification.signed': Field required" in err
    assert "2 of 3 mapping file(s) invalid" in err


def test_shipped_mappings_pass_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    from dmhub_adapter.mapping.config import packaged_dir

    assert cli_main(["check-config", str(packaged_dir())]) == 0
    out, _ = capsys.readouterr()
    for name in ("youzan", "doudian", "standard-webhooks"):
        assert f"{name}.yaml: ok" in out


@pytest.mark.parametrize(
    ("options", "namespace"),
    [
        ({"requestValues": {"bad-name": {"header": "X-Event"}}}, "_request"),
        ({"accountValues": {"bad name": {"secret": "mchid"}}}, "_account"),
    ],
)
def test_request_and_account_value_names_must_be_identifiers(options: dict[str, Any], namespace: str) -> None:
    from pydantic import ValidationError

    from dmhub_adapter.sources.generic.adapter import GenericOptions

    with pytest.raises(ValidationError, match=rf"must be letters, digits and '_' \(they become {namespace}\.<name>\)"):
        GenericOptions.model_validate(options)
    good = {key: {"ok_name": spec} for key, value in options.items() for spec in value.values()}
    GenericOptions.model_validate(good)
