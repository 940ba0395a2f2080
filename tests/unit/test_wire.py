"""The sender's pydantic-free reader of queued events against the pydantic model it stands in
for: the same generated messages must get the same verdict and, when accepted, the same DM Hub
bodies, identity and envelope."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dmhub_adapter.dmhub.client import collector_event_body, v2_event_body
from dmhub_adapter.model.customer_event import ATTRIBUTE_BUDGET_CONTEXT, QueuedEvent
from dmhub_adapter.model.rules import AttributeBudget
from dmhub_adapter.model.wire import WireQueuedEvent, read_queued_event

BUDGETS = (AttributeBudget.of(5), AttributeBudget.of(16))


def _valid(custom: bool, with_identity: bool) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "c_order_paid" if custom else "purchase",
        "date": "2024-05-01T10:00:00Z",
        "externalId": "ext-1",
        "source": "淘宝",
    }
    if custom:
        event.update(order_id="T1", amount="19.90", items=2)
    else:
        event.update(targetId="T1", targetName="订单", summary="paid", score=3, tag="a,b")
    data: dict[str, Any] = {
        "version": 1,
        "source": "taobao",
        "account": "shop1",
        "claim_key": "taobao#shop1#ext-1",
        "trace_id": "trace",
        "rule": "paid",
        "event": event,
    }
    if with_identity:
        data["identity"] = {"type": "taobao-openuid", "value": "AAH1", "name": "张三", "create": True}
    else:
        event["customerId"] = 42
    if custom:
        data["attribute_kinds"] = {"amount": "amount", "items": "quantity"}
    return data


#: values that sit on either side of some rule of the contract
_TEXTS = [
    "", "a", "x" * 32, "x" * 33, "x" * 128, "x" * 129, "x" * 255, "x" * 256, "x" * 1024, "x" * 1025,
    "c_", "c_x", "wechat", "Wechat", "-a", "a-b_c", "2024-05-01T10:00:00Z", "2024-02-30T10:00:00Z",
    "2024-05-01 10:00:00", "２０２４-05-01T10:00:00Z", "19.90", "19.99999", "-1", "1e3", "text", "quantity",
    "amount", "\ud800", "é" * 33, "微信" * 20, " ", "true", "1", "x\ud800" * 20,
]
_SCALARS = [None, True, False, 0, 1, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 1.0, 1.5, float(2**70)]
_EXTRA_NAMES = [
    "id", "lastUpdated", "order_id", "amount", "items", "note", "a-b", "1x", "_x", "__class__", "to_request",
    "model_config", "x" * 64, "x" * 65, "名字", "text",
]
#: the keys a mutation may set or delete, where it lands
_NAMES = {
    "": ["version", "source", "account", "claim_key", "trace_id", "rule", "identity", "event", "attribute_kinds",
         "surplus"],
    "identity": ["type", "value", "name", "create", "surplus"],
    "event": ["event", "date", "targetId", "targetName", "summary", "score", "tag", "customerId", "externalId",
              "source", "contentName", "campaign", "campaignName", "referrer", *_EXTRA_NAMES],
    "attribute_kinds": _EXTRA_NAMES,
}

_leaf = st.sampled_from(_TEXTS + _SCALARS)
_value = _leaf | st.text(max_size=40) | st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(_EXTRA_NAMES), inner, max_size=2),
    max_leaves=4,
)
_MUTATION = st.sampled_from(sorted(_NAMES)).flatmap(
    lambda place: st.tuples(st.just(place), st.sampled_from(["set", "set", "set", "delete"]),
                            st.sampled_from(_NAMES[place]), _value)
)


def _mutated(data: dict[str, Any], mutations: list[tuple[str, str, str, Any]]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for place, action, name, value in mutations:
        target = data if not place else data.get(place)
        if not isinstance(target, dict):
            continue
        if action == "delete":
            target.pop(name, None)
        else:
            target[name] = value
    return data


def _pydantic(data: dict[str, Any], budget: AttributeBudget) -> QueuedEvent | None:
    try:
        return QueuedEvent.model_validate(data, context={ATTRIBUTE_BUDGET_CONTEXT: budget})
    except (ValidationError, ValueError):
        return None


def _wire(data: dict[str, Any], budget: AttributeBudget) -> WireQueuedEvent | None:
    try:
        return read_queued_event(data, budget)
    except ValueError:
        return None


def _assert_same(model: QueuedEvent, wire: WireQueuedEvent) -> None:
    assert list(wire.event.to_request().items()) == list(model.event.to_request().items())
    assert wire.event.custom_attributes == model.event.custom_attributes
    assert (wire.event.event, wire.event.customerId, wire.event.externalId) == (
        model.event.event, model.event.customerId, model.event.externalId,
    )
    assert (wire.source, wire.account, wire.claim_key, wire.trace_id, wire.rule, wire.version) == (
        model.source, model.account, model.claim_key, model.trace_id, model.rule, model.version,
    )
    assert wire.attribute_kinds == model.attribute_kinds
    if model.identity is None:
        assert wire.identity is None
    else:
        assert wire.identity is not None
        assert (wire.identity.type, wire.identity.value, wire.identity.name, wire.identity.create) == (
            model.identity.type, model.identity.value, model.identity.name, model.identity.create,
        )
    identity = (wire.identity.type, wire.identity.value) if wire.identity is not None else None
    assert collector_event_body(wire.event, identity) == collector_event_body(model.event, identity)
    assert v2_event_body(wire.event, identity) == v2_event_body(model.event, identity)
    assert wire.event.with_customer_id(7).to_request() == model.event.model_copy(
        update={"customerId": 7}
    ).to_request()


@settings(max_examples=4000, deadline=None)
@given(
    custom=st.booleans(),
    with_identity=st.booleans(),
    budget=st.sampled_from(BUDGETS),
    mutations=st.lists(_MUTATION, min_size=1, max_size=3),
)
def test_both_readers_agree_on_generated_messages(
    custom: bool, with_identity: bool, budget: AttributeBudget, mutations: list[tuple[str, str, str, Any]]
) -> None:
    data = _mutated(_valid(custom, with_identity), mutations)
    model, wire = _pydantic(data, budget), _wire(data, budget)
    assert (model is None) == (wire is None), f"pydantic {'refuses' if model is None else 'accepts'}: {data!r}"
    if model is not None and wire is not None:
        _assert_same(model, wire)


def test_both_readers_agree_on_every_single_change() -> None:
    """Each key of each part, set to each value of the pools (limits ± 1, wrong types, a lone
    surrogate, nested values) or deleted, on each kind of valid message and budget."""
    values = [*_TEXTS, *_SCALARS, [], ["x"], {}, {"a": 1}]
    checked = 0
    for custom in (True, False):
        for with_identity in (True, False):
            for budget in BUDGETS:
                for place, names in _NAMES.items():
                    for name in names:
                        changes = [(place, "delete", name, None)] + [(place, "set", name, v) for v in values]
                        for change in changes:
                            data = _mutated(_valid(custom, with_identity), [change])
                            model, wire = _pydantic(data, budget), _wire(data, budget)
                            assert (model is None) == (wire is None), (
                                f"pydantic {'refuses' if model is None else 'accepts'}: {change!r} on {data!r}"
                            )
                            if model is not None and wire is not None:
                                _assert_same(model, wire)
                            checked += 1
    assert checked > 10_000


@pytest.mark.parametrize("custom", [True, False])
@pytest.mark.parametrize("with_identity", [True, False])
def test_the_ingests_own_json_reads_back_alike(custom: bool, with_identity: bool) -> None:
    """What the ingest writes (pydantic's JSON) is what the sender reads, unchanged."""
    model = QueuedEvent.model_validate(_valid(custom, with_identity))
    wire = read_queued_event(json.loads(model.model_dump_json()))
    _assert_same(model, wire)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"event": {"event": "purchase", "date": "2024-05-01T10:00:00Z", "externalId": "e", "customerId": 1,
                    "note": "x"}}, "event: custom attributes ['note'] are only allowed on custom event types"),
        ({"identity": {"type": "wechat", "value": "o1", "create": "yes"}}, "identity.create: must be true or false"),
        ({"version": "1"}, "version: must be an integer"),
        ({"surplus": 1}, "surplus: not a field of a queued event"),
        ({"event": {"event": "c_x", "date": "2024-05-01T10:00:00Z", "externalId": "\ud800", "customerId": 1}},
         "event.externalId: is not valid Unicode text"),
        ({"attribute_kinds": {"order_id": "money"}}, "attribute_kinds.order_id: must be one of text, quantity, amount"),
    ],
)
def test_a_refusal_says_which_field_and_why(change: dict[str, Any], reason: str) -> None:
    data = {**_valid(True, True), **change}
    with pytest.raises(ValueError, match="^" + reason.replace("[", r"\[").replace("]", r"\]")):
        read_queued_event(data)
    assert _pydantic(data, BUDGETS[0]) is None
