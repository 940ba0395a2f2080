"""The mapping engine: rule matching, values, converters, skip vs unmapped, foreach, decode."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmhub_adapter.mapping import map_payload, parse_mapping
from dmhub_adapter.mapping.engine import decode_message, map_message, split_messages

CONFIG = """
source: demo
description: a tiny source to exercise the engine
messages: "messages || [@]"
decode:
  - {field: content, convert: json, required: false}
defaults:
  identity: {type: demo-user, value: user, name: nick}
  fields:
    source: {value: demo-shop}
rules:
  - name: receipts
    when: "kind == 'receipt'"
    skip: receipts carry no customer action
  - name: follow
    when: "lower(kind) == 'follow'"
    event: c_demo_follow
    externalId: {template: "{to}|{user}|{str(at)}|{lower(kind)}|{key}"}
    date: {path: at, convert: unix_seconds}
    fields:
      tag: {path: "title || 'follow,qr'", truncate: true}
      score: {path: points, convert: int}
    attributes:
      to: to
      scene: {path: key, convert: ["empty_as_null", "strip_prefix:qrscene_"]}
  - name: order
    when: "kind == 'order'"
    foreach: content.lines
    event: c_demo_order_line
    identity: {type: demo-buyer, value: content.buyer, create: false}
    externalId: {template: "order|{content.tid}|{_item.oid}"}
    date: {path: content.time, convert: gmt8}
    attributes:
      tid: {path: content.tid, convert: string}
      amount: {path: _item.fee, convert: fen_to_yuan, kind: amount}
      quantity: {path: _item.qty, kind: quantity}
      account: _meta.account
"""


MAPPING = parse_mapping(CONFIG, "<demo>")


@pytest.fixture(scope="module")
def mapping():  # type: ignore[no-untyped-def]
    return MAPPING


def follow(**overrides: object) -> dict[str, object]:
    return {"kind": "follow", "user": "u1", "nick": "Ann", "to": "gh_1", "at": 1732780800,
            "key": "qrscene_spring", "points": "3", **overrides}


def test_first_matching_rule_maps_with_defaults_identity_and_converters(mapping) -> None:  # type: ignore[no-untyped-def]
    result = map_message(mapping, follow())
    assert result.status == "mapped" and result.rule == "follow"
    (mapped,) = result.events
    assert mapped.identity is not None
    assert (mapped.identity.type, mapped.identity.value, mapped.identity.name) == ("demo-user", "u1", "Ann")
    assert mapped.event.to_request() == {
        "event": "c_demo_follow",
        "externalId": "gh_1|u1|1732780800|follow|qrscene_spring",
        "date": "2024-11-28T08:00:00Z",
        "source": "demo-shop",
        "to": "gh_1",
        "tag": "follow,qr",
        "score": 3,
        "scene": "spring",
    }


def test_empty_values_leave_optional_fields_out(mapping) -> None:  # type: ignore[no-untyped-def]
    (mapped,) = map_message(mapping, follow(key="")).events
    assert "scene" not in mapped.event.to_request()
    assert mapped.event.externalId == "gh_1|u1|1732780800|follow|"


def test_truncate_cuts_only_where_the_rule_says(mapping) -> None:  # type: ignore[no-untyped-def]
    (mapped,) = map_message(mapping, follow(title="t" * 300)).events
    assert mapped.event.tag == "t" * 255


def test_skip_is_not_unmapped(mapping) -> None:  # type: ignore[no-untyped-def]
    skipped = map_message(mapping, {"kind": "receipt"})
    assert (skipped.status, skipped.reason, skipped.events) == ("skipped", "receipts carry no customer action", [])
    unmapped = map_message(mapping, {"kind": "refund"})
    assert (unmapped.status, unmapped.reason) == ("unmapped", "no rule matched this message")


def test_a_value_that_cannot_be_converted_makes_the_message_unmapped_with_the_field(mapping) -> None:  # type: ignore[no-untyped-def]
    result = map_message(mapping, follow(at="yesterday"))
    assert result.status == "unmapped"
    assert "rule 'follow'" in (result.reason or "") and "'date'" in (result.reason or "")


def test_a_missing_required_value_is_reported(mapping) -> None:  # type: ignore[no-untyped-def]
    result = map_message(mapping, follow(user=None))
    assert result.status == "unmapped" and "identity.value" in (result.reason or "")


def test_an_event_dm_hub_would_refuse_is_unmapped_not_enqueued(mapping) -> None:  # type: ignore[no-untyped-def]
    result = map_message(mapping, follow(points="1.5"))
    assert result.status == "unmapped" and "score" in (result.reason or "")


def test_foreach_makes_one_event_per_item_and_meta_is_visible(mapping) -> None:  # type: ignore[no-untyped-def]
    content = {"tid": 3898765432101234567, "buyer": "b1", "time": "2024-06-18 20:01:41",
               "lines": [{"oid": 1, "fee": 1990}, {"oid": 2, "fee": 5}]}
    message = {"kind": "order", "content": json.dumps(content)}
    (result,) = map_payload(mapping, [message], {"account": "shop-1"})
    assert result.status == "mapped"
    bodies = [m.event.to_request() for m in result.events]
    assert [b["externalId"] for b in bodies] == ["order|3898765432101234567|1", "order|3898765432101234567|2"]
    assert [b["amount"] for b in bodies] == ["19.90", "0.05"]
    assert {b["tid"] for b in bodies} == {"3898765432101234567"}
    assert [m.attribute_kinds for m in result.events] == [{"amount": "amount"}] * 2
    assert {b["account"] for b in bodies} == {"shop-1"}
    assert all(m.identity is not None and not m.identity.create for m in result.events)


def test_an_attribute_of_the_wrong_kind_makes_the_message_unmapped(mapping) -> None:  # type: ignore[no-untyped-def]
    content = {"tid": 1, "buyer": "b1", "time": "2024-06-18 20:01:41", "lines": [{"oid": 1, "fee": 5, "qty": "two"}]}
    (result,) = map_payload(mapping, [{"kind": "order", "content": json.dumps(content)}])
    assert result.status == "unmapped" and "'quantity' is a quantity" in (result.reason or "")


def test_decode_failure_is_unmapped_with_the_field(mapping) -> None:  # type: ignore[no-untyped-def]
    (result,) = map_payload(mapping, [{"kind": "order", "content": "{broken"}])
    assert result.status == "unmapped" and "decode: field 'content'" in (result.reason or "")


def test_required_decode_field_missing(mapping) -> None:  # type: ignore[no-untyped-def]
    strict = parse_mapping(CONFIG.replace("required: false", "required: true"), "<demo>")
    with pytest.raises(ValueError, match="'content' is missing"):
        decode_message(strict, {"kind": "follow"})


def test_split_messages(mapping) -> None:  # type: ignore[no-untyped-def]
    assert split_messages(mapping, {"messages": [{"a": 1}, {"a": 2}]}) == [{"a": 1}, {"a": 2}]
    assert split_messages(mapping, {"a": 1}) == [{"a": 1}]
    with pytest.raises(ValueError, match="message object"):
        split_messages(mapping, {"messages": [1, 2]})


def test_continue_lets_later_rules_add_events() -> None:
    config = """
source: multi
defaults: {identity: {type: u, value: id}}
rules:
  - {name: first, continue: true, event: c_a, externalId: "'a'", date: {value: "2020-01-01T00:00:00Z"}}
  - {name: second, event: c_b, externalId: "'b'", date: {value: "2020-01-01T00:00:00Z"}}
"""
    result = map_message(parse_mapping(config, "<multi>"), {"id": "1"})
    assert [m.event.event for m in result.events] == ["c_a", "c_b"]


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                                      st.lists(st.integers(), max_size=3)), max_size=8))
def test_arbitrary_messages_never_raise(message: dict[str, object]) -> None:
    result = map_payload(MAPPING, [message])[0]
    assert result.status in {"mapped", "skipped", "unmapped"}
    if result.status == "mapped":
        assert all(m.event.externalId for m in result.events)


def test_odd_shapes_make_a_message_unmapped_never_raise(mapping) -> None:  # type: ignore[no-untyped-def]
    assert map_message(mapping, {"kind": 5}).status == "unmapped"  # lower() given a number
    result = map_message(mapping, follow(nick={"nested": 1}))
    assert result.status == "unmapped" and "identity.name" in (result.reason or "")
    result = map_message(mapping, follow(user=["a"]))
    assert result.status == "unmapped" and "externalId" in (result.reason or "")
    order = {"kind": "order", "content": {"tid": 1, "buyer": "b", "time": "2024-06-18 20:01:41",
                                          "lines": [{"oid": 1, "fee": 10**40}]}}
    result = map_message(mapping, order)
    assert result.status == "unmapped" and "too large" in (result.reason or "")
