"""Time bounds for unsigned-timestamp schemes, account bindings, unsigned request values and
per-source body caps (issue 14, items 5, 6, 11 and 13's body cap)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import pytest
import yaml

from dmhub_adapter.errors import Forbidden, Unauthorized
from dmhub_adapter.ingest.tenancy import _warned, check_account_binding, source_body_cap
from dmhub_adapter.mapping.config import MappingConfigError
from dmhub_adapter.sources.base import Account, Inbound
from dmhub_adapter.sources.generic import GenericSource, build
from dmhub_adapter.sources.registry import load_source_mapping, parse_source_mapping
from dmhub_adapter.webhook import WebhookRequest

RULES: list[dict[str, Any]] = [
    {"name": "order", "when": "kind == 'order'", "event": "c_order", "externalId": {"template": "o|{id}"},
     "date": {"path": "at", "convert": "unix_seconds"}, "identity": {"type": "demo-user", "value": "user"}},
]
NOW = 1_700_000_000
MD5: dict[str, Any] = {
    "scheme": "signature", "algorithm": "md5", "signature": {"header": "x-sign"},
    "signed": ["body", {"secret": "token"}],
}


def mapping_text(**blocks: Any) -> str:
    data = {"source": "demo", "adapter": "generic", "rules": RULES, **blocks}
    return yaml.safe_dump(data, allow_unicode=True)


def make(**blocks: Any) -> GenericSource:
    return build(parse_source_mapping(mapping_text(**blocks), "<demo>"))


def signed(body: bytes) -> WebhookRequest:
    return WebhookRequest(method="POST", source="demo", account="a", body=body,
                          headers={"x-sign": hashlib.md5(body + b"s3cret").hexdigest()}, received_at=NOW)


def body(*messages: dict[str, Any]) -> bytes:
    return json.dumps(list(messages)).encode()


def account(source: GenericSource, **secret: Any) -> Account:
    return Account("demo", "a", source.mapping, {"token": "s3cret", **secret})


# ---- item 5: a signed scheme without a timestamp needs a time bound -------------------------


def test_check_config_refuses_a_signed_scheme_without_timestamp_or_max_age() -> None:
    with pytest.raises(MappingConfigError, match="signs no timestamp"):
        make(verification=MD5)


def test_replay_window_none_needs_a_reason_and_excludes_max_age() -> None:
    make(verification={**MD5, "replayWindow": {"none": "the platform resends old pushes on request"}})
    with pytest.raises(MappingConfigError, match="replayWindow"):
        make(verification={**MD5, "replayWindow": {"none": ""}})
    with pytest.raises(MappingConfigError, match="not both"):
        make(verification={**MD5, "replayWindow": {"none": "a long enough reason"},
                           "maxAge": {"seconds": 3600, "time": "at"}})


def test_max_age_beyond_the_claim_ttl_is_refused() -> None:
    with pytest.raises(MappingConfigError, match=r"maxAge\.seconds"):
        make(verification={**MD5, "maxAge": {"seconds": 8 * 86400, "time": "at"}})


def test_max_age_bounds_each_message_by_its_own_time() -> None:
    source = make(verification={**MD5, "maxAge": {"seconds": 3600, "time": "at", "when": "kind != 'ping'"}})
    fresh = source.receive(signed(body({"kind": "order", "at": NOW - 3599})), account(source))
    assert len(fresh.messages) == 1 and fresh.rejected == []
    for at in (NOW - 3601, NOW + 3601):
        with pytest.raises(Unauthorized, match="stale") as info:
            source.receive(signed(body({"kind": "order", "at": NOW - 10}, {"kind": "order", "at": at})),
                           account(source))
        assert info.value.code == "stale"
    # a bounded message without a time is kept aside (unmapped queue), an exempt one passes
    mixed = source.receive(signed(body({"kind": "order"}, {"kind": "ping"})), account(source))
    assert [m["kind"] for m in mixed.messages] == ["ping"]
    assert [r.index for r in mixed.rejected] == [0] and "no payload time" in mixed.rejected[0].reason


def test_max_age_reads_dates_through_converters() -> None:
    millis = {"path": "at", "convert": "unix_millis"}
    source = make(verification={**MD5, "maxAge": {"seconds": 600, "time": millis}})
    assert source.receive(signed(body({"kind": "order", "at": NOW * 1000})), account(source)).messages
    with pytest.raises(Unauthorized):
        source.receive(signed(body({"kind": "order", "at": (NOW - 601) * 1000})), account(source))


@pytest.mark.parametrize("name", ["youzan", "doudian"])
def test_youzan_and_doudian_ship_a_time_bound_within_the_claim_ttl(name: str) -> None:
    mapping = load_source_mapping(name)
    assert mapping is not None and mapping.verification is not None
    seconds = mapping.verification["maxAge"]["seconds"]
    assert 3 * 86400 <= seconds < 7 * 86400


# ---- item 6: account binding ----------------------------------------------------------------


def bound_source() -> GenericSource:
    return make(verification={"scheme": "none"}, accountBinding={"path": "shop", "secret": "shopId",
                                                                   "when": "kind != 'ping'"})


def test_a_message_of_another_account_is_forbidden() -> None:
    source = bound_source()
    ok = Inbound(messages=[{"kind": "order", "shop": 10001}, {"kind": "ping"}])
    check_account_binding(account(source, shopId="10001"), ok)
    for other in ({"kind": "order", "shop": 10002}, {"kind": "order"}, {"kind": "order", "shop": {"x": 1}}):
        with pytest.raises(Forbidden) as info:
            check_account_binding(account(source, shopId="10001"), Inbound(messages=[ok.messages[0], other]))
        assert info.value.status == 403 and "10001" not in info.value.message


def test_a_secret_without_the_field_is_not_checked_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    source = bound_source()
    _warned.discard(("demo", "a"))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            check_account_binding(account(source), Inbound(messages=[{"kind": "order", "shop": 1}]))
    assert [r.message for r in caplog.records].count(
        "account binding not enforced: the secret has no field 'shopId'") == 1


@pytest.mark.parametrize(("name", "path", "field"), [
    ("youzan", "kdt_id", "kdtId"), ("taobao", "user_id", "userId"), ("wechat", "ToUserName", "originalId"),
    ("doudian", "data.shop_id", "shopId"),
])
def test_built_in_sources_declare_their_binding(name: str, path: str, field: str) -> None:
    mapping = load_source_mapping(name)
    assert mapping is not None and mapping.account_binding is not None
    assert (mapping.account_binding.path, mapping.account_binding.secret) == (path, field)


def test_doudian_binding_reads_the_decoded_data() -> None:
    mapping = load_source_mapping("doudian")
    assert mapping is not None
    shop = Account("doudian", "a", mapping, {"shopId": 77977})
    message = {"tag": "101", "data": json.dumps({"shop_id": 77977, "p_id": 1})}
    check_account_binding(shop, Inbound(messages=[message, {"tag": "0", "data": "{}"}]))
    with pytest.raises(Forbidden):
        check_account_binding(shop, Inbound(messages=[{**message, "data": json.dumps({"shop_id": 1})}]))


# ---- item 11: request values feeding externalId must be signed ------------------------------


def with_request_value(verification: dict[str, Any], header: str) -> str:
    rules = [{**RULES[0], "externalId": {"template": "d|{_request.delivery}"}}]
    data = {"source": "demo", "adapter": "generic", "rules": rules, "verification": verification,
            "options": {"requestValues": {"delivery": {"header": header}}}}
    return yaml.safe_dump(data)


def test_an_unsigned_header_cannot_feed_external_id() -> None:
    verification = {**MD5, "replayWindow": {"none": "tested for request values only"}}
    with pytest.raises(MappingConfigError, match=r"_request\.delivery.*does not cover"):
        parse_source_mapping(with_request_value(verification, "x-delivery"), "<demo>")
    with pytest.raises(MappingConfigError, match="does not cover"):
        parse_source_mapping(with_request_value({"scheme": "none"}, "x-delivery"), "<demo>")
    signed_header = {**verification, "signed": [{"header": "X-Delivery"}, "body", {"secret": "token"}]}
    parse_source_mapping(with_request_value(signed_header, "x-delivery"), "<demo>")


def test_the_standard_webhooks_mapping_uses_a_signed_header() -> None:
    assert load_source_mapping("standard-webhooks") is not None


# ---- item 13: the source decides its body cap -------------------------------------------------


def test_the_source_decides_its_body_cap() -> None:
    from dmhub_adapter.sources.registry import source_for

    taobao, youzan, doudian = (source_for(n) for n in ("taobao", "youzan", "doudian"))
    assert taobao is not None and youzan is not None and doudian is not None
    assert source_body_cap(taobao) == 1024 * 1024
    assert source_body_cap(youzan) == 262144
    assert source_body_cap(doudian) is None  # the MAX_BODY_BYTES setting applies
