"""The Taobao mapping config, its sample events and the dry run over them."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmhub_adapter.apigw import request_from_event
from dmhub_adapter.mapping.config import MappingConfigError, MappingFile, load_mapping, mapping_path
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.model.customer_event import EVENT_MAX
from dmhub_adapter.sources.base import Account
from dmhub_adapter.sources.registry import parse_source_mapping
from dmhub_adapter.sources.taobao import build, check_config
from dmhub_adapter_tools import cli
from dmhub_adapter_tools.dryrun import dry_run
from tests.conftest import EVENTS_DIR, ROOT

TID = 3898765432101234567
OID = 3898765432101230001
REFUND_ID = 228765432101234567
OPEN_UID = "AAHq5d-EAAeG3JedwSFpZMe1"

TRADE_EVENTS = {
    "TradeCreate": "c_taobao_order_created",
    "TradeBuyerStepPay": "c_taobao_order_deposit_paid",
    "TradeBuyerPay": "c_taobao_order_paid",
    "TradePartlySellerShip": "c_taobao_order_partly_shipped",
    "TradeSellerShip": "c_taobao_order_shipped",
    "TradeSuccess": "c_taobao_order_completed",
    "TradeCloseAndModifyDetailOrder": "c_taobao_suborder_closed",
    "TradePartlyRefund": "c_taobao_order_partly_refunded",
    "TradeModifyFee": "c_taobao_order_price_changed",
    "TradeRated": "c_taobao_order_rated",
}
REFUND_EVENTS = {
    "RefundCreated": "c_taobao_refund_created",
    "RefundSellerAgreeAgreement": "c_taobao_refund_agreed",
    "RefundSellerRefuseAgreement": "c_taobao_refund_refused",
    "RefundBuyerReturnGoods": "c_taobao_refund_goods_returned",
    "RefundClosed": "c_taobao_refund_closed",
    "RefundSuccess": "c_taobao_refund_succeeded",
}
NOISE = ["TradeChanged", "TradeMemoModified", "TradeLogisticsAddressChanged", "TradeDelayConfirmPay",
         "TradeTimeoutRemind", "TradeAlipayCreate"]


@pytest.fixture(scope="module")
def mapping() -> MappingFile:
    loaded = load_mapping("taobao")
    assert loaded is not None
    return loaded


def _message(topic: str, message_id: int = 2760453001234567902, **content: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"buyer_nick": "t**", "buyer_open_uid": OPEN_UID, "oid": OID, "tid": TID,
                            "seller_nick": "示例旗舰店"}
    body.update(content)
    return {"id": message_id, "topic": topic, "pub_time": "2024-06-18 20:01:41", "pub_app_key": "12345678",
            "user_id": 2200123456789, "user_nick": "示例旗舰店",
            "content": json.dumps({k: v for k, v in body.items() if v is not None})}


def _map_one(mapping: MappingFile, message: dict[str, Any]) -> Any:
    [result] = map_payload(mapping, [message], {"source": "taobao", "account": "demo"})
    return result


@pytest.mark.parametrize(("topic", "event"), sorted(TRADE_EVENTS.items()))
def test_trade_topics(mapping: MappingFile, topic: str, event: str) -> None:
    result = _map_one(mapping, _message(f"taobao_trade_{topic}", payment="199", status="WAIT_SELLER_SEND_GOODS"))
    assert result.status == "mapped", result.reason
    [mapped] = result.events
    body = mapped.event.to_request()
    assert body["event"] == event
    assert body["tid"] == str(TID) and "targetId" not in body
    assert body["date"] == "2024-06-18T12:01:41Z"
    assert body["payment"] == "199.00"
    assert "status" not in body  # dropped for tid within the budget of five: the event type says it
    assert mapped.attribute_kinds == {"payment": "amount"}
    assert body["oid"] == str(OID)
    assert "refund_id" not in body and "refund_fee" not in body  # absent in the message → left out
    assert body["externalId"].startswith(f"taobao_trade_{topic}|{TID}|{OID}")
    assert mapped.identity is not None
    assert (mapped.identity.type, mapped.identity.value) == ("taobao-openuid", OPEN_UID)
    assert "t**" not in json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize(("topic", "event"), sorted(REFUND_EVENTS.items()))
def test_refund_topics(mapping: MappingFile, topic: str, event: str) -> None:
    message = _message(f"taobao_refund_{topic}", refund_id=REFUND_ID, refund_fee="59.5", bill_type="return_bill",
                       refund_phase="aftersale", modified="2024-06-25 09:12:44")
    result = _map_one(mapping, message)
    assert result.status == "mapped", result.reason
    body = result.events[0].event.to_request()
    assert body["event"] == event
    assert body["externalId"] == f"taobao_refund_{topic}|{TID}|{OID}|{REFUND_ID}"
    assert body["refund_id"] == str(REFUND_ID)
    assert body["refund_fee"] == "59.50"
    assert (body["tid"], body["refund_phase"], body["oid"]) == (str(TID), "aftersale", str(OID))
    assert "bill_type" not in body
    assert len(result.events[0].event.custom_attributes) <= 5


@pytest.mark.parametrize(("status", "event"), [("TRADE_CLOSED_BY_TAOBAO", "c_taobao_order_cancelled"),
                                               ("TRADE_CLOSED", "c_taobao_order_closed"),
                                               (None, "c_taobao_order_closed")])
def test_trade_close_splits_on_status(mapping: MappingFile, status: str | None, event: str) -> None:
    result = _map_one(mapping, _message("taobao_trade_TradeClose", status=status, payment="59.00"))
    assert result.events[0].event.event == event


def test_refund_fields_on_a_trade_topic_become_attributes_and_key(mapping: MappingFile) -> None:
    result = _map_one(mapping, _message("taobao_trade_TradeCloseAndModifyDetailOrder", refund_id=REFUND_ID,
                                        refund_fee="10", payment="189.00"))
    body = result.events[0].event.to_request()
    assert body["refund_id"] == str(REFUND_ID) and body["refund_fee"] == "10.00"
    assert body["externalId"].endswith(f"|{REFUND_ID}")


def test_redelivery_under_a_new_message_id_keeps_the_key(mapping: MappingFile) -> None:
    first = _map_one(mapping, _message("taobao_trade_TradeBuyerPay", 1, payment="199.00"))
    again = _map_one(mapping, _message("taobao_trade_TradeBuyerPay", 2, payment="199.00"))
    assert first.events[0].event.externalId == again.events[0].event.externalId


def test_successive_fee_changes_and_two_ratings_are_distinct(mapping: MappingFile) -> None:
    fees = [_map_one(mapping, _message("taobao_trade_TradeModifyFee", payment=p)) for p in ("199.00", "150.00")]
    assert fees[0].events[0].event.externalId != fees[1].events[0].event.externalId
    rates = [_map_one(mapping, _message("taobao_trade_TradeRated", rater=r)) for r in ("buyer", "seller")]
    assert rates[0].events[0].event.externalId != rates[1].events[0].event.externalId


def test_gzip_content_maps_through_the_decode_step_alone(mapping: MappingFile) -> None:
    import base64
    import gzip

    message = _message("taobao_trade_TradeSuccess")
    message["content"] = base64.b64encode(gzip.compress(message["content"].encode())).decode()
    assert _map_one(mapping, message).events[0].event.to_request()["tid"] == str(TID)


def test_without_buyer_open_uid_the_message_is_unmapped_not_keyed_by_nick(mapping: MappingFile) -> None:
    result = _map_one(mapping, _message("taobao_trade_TradeBuyerPay", buyer_open_uid=None))
    assert result.status == "unmapped"
    assert "identity.value" in (result.reason or "")


@pytest.mark.parametrize("field", ["buyer_open_uid", "tid", "oid", "payment", "refund_phase"])
@pytest.mark.parametrize("value", [{"a": 1}, [1, 2]])
def test_non_scalar_values_make_the_message_unmapped(mapping: MappingFile, field: str, value: Any) -> None:
    topic = "taobao_trade_TradeBuyerPay" if field in ("oid", "payment") else "taobao_refund_RefundCreated"
    result = _map_one(mapping, _message(topic, **{field: value}))
    assert result.status == "unmapped" and result.reason


def test_absurd_amount_is_unmapped_not_a_crash(mapping: MappingFile) -> None:
    result = _map_one(mapping, _message("taobao_trade_TradeBuyerPay", payment=1e26))
    assert result.status == "unmapped" and "payment" in (result.reason or "")


def test_without_tid_the_message_is_unmapped(mapping: MappingFile) -> None:
    result = _map_one(mapping, _message("taobao_trade_TradeBuyerPay", tid=None))
    assert result.status == "unmapped" and "externalId" in (result.reason or "")


def test_unknown_topic_is_unmapped_and_kept(mapping: MappingFile) -> None:
    result = _map_one(mapping, _message("taobao_item_ItemAdd"))
    assert result.status == "unmapped" and result.reason == "no rule matched this message"


@pytest.mark.parametrize("topic", NOISE)
def test_noise_topics_are_skipped_with_a_reason(mapping: MappingFile, topic: str) -> None:
    result = _map_one(mapping, _message(f"taobao_trade_{topic}", buyer_open_uid=None))
    assert result.status == "skipped" and result.reason


def test_event_types_fit_dmhub_and_the_header_documents_every_rule(mapping: MappingFile) -> None:
    path = mapping_path("taobao")
    assert path is not None
    header = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#"))
    for rule in mapping.rules:
        if rule.skip is not None:
            topic = re.search(r"'taobao_trade_(\w+)'", rule.when or "")
            assert topic and topic.group(1) in header
            continue
        assert rule.event is not None
        event = rule.event.value
        assert isinstance(event, str) and event.startswith("c_taobao_") and len(event) <= EVENT_MAX
        assert event in header, f"{event} missing from the header table"
        assert len(rule.attributes) <= 5
    mapped = {rule.event.value for rule in mapping.rules if rule.event is not None}
    assert set(TRADE_EVENTS.values()) | set(REFUND_EVENTS.values()) <= mapped


# ---------------------------------------------------------------------------------------------
# check_config


def _yaml() -> str:
    path = mapping_path("taobao")
    assert path is not None
    return path.read_text(encoding="utf-8")


def test_packaged_config_is_clean(mapping: MappingFile) -> None:
    assert check_config(mapping) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("value: {path: content.buyer_open_uid", "value: {path: content.buyer_nick", "buyer_nick is masked"),
        ("timestamp_tolerance_seconds: 600", "timestamp_tolerance_seconds: 0", "verification.timestamp"),
        ("sign_methods: [md5, hmac, hmac-sha256]", "sign_methods: [sha1]", "verification.sign_methods"),
        ("max_messages: 200", "max_messages: 200\n  colour: blue", "options.colour"),
        ("format: json", "format: xml", "format"),
    ],
)
def test_check_config_names_the_problem(old: str, new: str, problem: str) -> None:
    assert old in _yaml()
    with pytest.raises(MappingConfigError) as caught:
        parse_source_mapping(_yaml().replace(old, new), "<taobao>")
    assert problem in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Sample events and the dry run

EXPECTED_SAMPLES = {
    "taobao-created.json": ["c_taobao_order_created"],
    "taobao-paid.json": ["c_taobao_order_paid"],
    "taobao-shipped.json": ["c_taobao_order_shipped"],
    "taobao-success.json": ["c_taobao_order_completed"],
    "taobao-closed.json": ["c_taobao_order_cancelled"],
    "taobao-refund-created.json": ["c_taobao_refund_created"],
    "taobao-batch.json": ["c_taobao_order_created", "c_taobao_order_paid"],
}


def test_every_sample_is_listed() -> None:
    assert sorted(p.name for p in EVENTS_DIR.glob("taobao-*.json")) == sorted(EXPECTED_SAMPLES)


@pytest.mark.parametrize(("name", "events"), sorted(EXPECTED_SAMPLES.items()))
def test_samples_map_as_documented(name: str, events: list[str]) -> None:
    result = dry_run("taobao", (EVENTS_DIR / name).read_bytes())
    assert [item["event"]["event"] for item in result] == events
    for item in result:
        assert item["identity"]["type"] == "taobao-openuid"
        assert re.fullmatch(r"taobao_\w+\|\d{19}\|\d{19}(\|\d+)?", item["event"]["externalId"])
        assert re.fullmatch(r"\d{19}", item["event"]["tid"])


@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_samples_carry_a_valid_signature_at_their_receive_time(mapping: MappingFile, name: str) -> None:
    request = request_from_event(json.loads((EVENTS_DIR / name).read_text(encoding="utf-8")))
    account = Account("taobao", "demo", mapping, {"appKey": "12345678", "appSecret": "helloworld"})
    inbound = build(mapping).receive(request, account)
    assert inbound.messages and not inbound.rejected


def test_cli_map_prints_the_events_as_json() -> None:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["map", "taobao", str(EVENTS_DIR / "taobao-refund-created.json")])
    assert code == 0, err.getvalue()
    [item] = json.loads(out.getvalue())
    assert item["event"]["refund_id"] == str(REFUND_ID)
    assert item["event"]["externalId"] == f"taobao_refund_RefundCreated|{TID}|{TID}|{REFUND_ID}"


def test_cli_map_explains_an_unmapped_payload(tmp_path: Path) -> None:
    payload = tmp_path / "unknown.json"
    payload.write_text(json.dumps(_message("taobao_item_ItemAdd")), encoding="utf-8")
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = cli.main(["map", "taobao", str(payload)])
    assert code == 1 and "no rule matched" in err.getvalue()


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_taobao_events", ROOT / "scripts" / "make_taobao_events.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_samples_are_what_the_generator_makes(tmp_path: Path) -> None:
    generator = _generator()
    assert generator.main(["--check"]) == 0
    assert generator.main(["--dir", str(tmp_path)]) == 0
    (tmp_path / "taobao-paid.json").write_text("{}", encoding="utf-8")
    assert generator.main(["--check", "--dir", str(tmp_path)]) == 1


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
_TOPICS = st.sampled_from([f"taobao_trade_{t}" for t in [*TRADE_EVENTS, "TradeClose", *NOISE]]
                          + [f"taobao_refund_{t}" for t in REFUND_EVENTS] + ["taobao_item_ItemAdd"])
_FIELDS = st.sampled_from(["tid", "oid", "refund_id", "payment", "refund_fee", "status", "buyer_open_uid",
                           "bill_type", "refund_phase", "rater", "modified"])


@settings(max_examples=120, deadline=None)
@given(topic=_TOPICS, content=st.dictionaries(_FIELDS, st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2),
                                                                 st.dictionaries(st.text(max_size=3), _SCALARS,
                                                                                 max_size=2))),
       pub_time=st.one_of(st.none(), st.just("2024-06-18 20:01:41"), _SCALARS))
def test_arbitrary_content_never_raises(topic: str, content: dict[str, Any], pub_time: Any) -> None:
    mapping = load_mapping("taobao")
    assert mapping is not None
    message = {"topic": topic, "pub_time": pub_time, "content": content}
    [result] = map_payload(mapping, [message], {"source": "taobao", "account": "demo"})
    assert result.status in ("mapped", "skipped", "unmapped")
    for mapped in result.events:
        assert len(mapped.event.externalId or "") <= 255
