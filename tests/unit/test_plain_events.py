"""The ingest's pydantic-free checks of mapped events against the pydantic models they stand in
for (dmhub_adapter.mapping.engine.checked_event, dmhub_adapter.ingest.pipeline.queued_event).

A rule's values can be of any type its converters and JMESPath give (text, numbers, booleans,
lists, objects, and from custom code bytes or datetimes), so the generated bodies mix JSON's
types at every limit with types JSON does not have. For each one the engine's verdict must be
the model's: the same refusal, word for word, or the same event (DM Hub body and custom
attributes); then the queued message must be what pydantic's ``QueuedEvent`` writes, or the
same refusal. A value the plain check is not exact for goes to pydantic, and the test shows
that it does.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dmhub_adapter.ingest.pipeline import QueuedEventError, _queued_model, queued_event
from dmhub_adapter.mapping.engine import MappedEvent, MappingError, checked_event, json_plain
from dmhub_adapter.model.customer_event import ATTRIBUTE_BUDGET_CONTEXT, CustomerEvent, Identity
from dmhub_adapter.model.rules import AttributeBudget
from dmhub_adapter.model.wire import read_queued_event
from dmhub_adapter.validation import error_lines
from dmhub_adapter.webhook import WebhookRequest
from tests.unit.test_wire import _EXTRA_NAMES, _SCALARS, _TEXTS

BUDGETS = (AttributeBudget.of(5), AttributeBudget.of(16))


class Text(str):
    """A str subclass, as a converter of custom code might return."""


class Level(enum.IntEnum):
    HIGH = 3


#: values JSON does not have, each of which the plain check must leave to pydantic
_FOREIGN = [
    b"bytes", bytearray(b"ba"), Text("sub"), Level.HIGH, decimal.Decimal("1.5"), float("nan"), float("inf"),
    datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.UTC), datetime.datetime(2024, 5, 1, 10, 0),
    datetime.date(2024, 5, 1), ("t", 1), frozenset({"s"}), {1: "int key"}, [b"nested"], {"k": float("nan")},
]
_DATES = ["2024-05-01T10:00:00Z", datetime.datetime(2024, 5, 1, 18, 0, tzinfo=datetime.timezone(
    datetime.timedelta(hours=8))), 1714557600, "2024-05-01", None, ""]
_FIELDS = ["event", "targetId", "targetName", "source", "contentName", "score", "tag", "campaign", "campaignName",
           "referrer", "summary", "externalId", "date", "customerId", *_EXTRA_NAMES]
_VALUES = _TEXTS + _SCALARS + _FOREIGN + _DATES


def _body(custom: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"event": "c_order_paid" if custom else "purchase", "date": "2024-05-01T10:00:00Z",
                            "externalId": "ext-1", "source": "淘宝"}
    if custom:
        body.update(order_id="T1", amount="19.90", items=2)
    else:
        body.update(targetId="T1", targetName="订单", summary="paid", score=3, tag="a,b")
    return body


IDENTITY = {"type": "taobao-openuid", "value": "AAH1", "name": "张三", "create": True}
KINDS = (("amount", "amount"), ("items", "quantity"))


def _engine(body: dict[str, Any], budget: AttributeBudget, identity: dict[str, Any] | None = IDENTITY
            ) -> tuple[str, Any]:
    try:
        mapped = checked_event("r", copy.deepcopy(body), identity, KINDS, budget)
    except MappingError as exc:
        return "refused", str(exc)
    return "mapped", mapped


def _model(body: dict[str, Any], budget: AttributeBudget, identity: dict[str, Any] | None = IDENTITY
           ) -> tuple[str, Any]:
    """What the engine did before: the pydantic models, in the same order."""
    if identity is not None:
        try:
            Identity(**identity)
        except ValidationError as exc:
            return "refused", f"rule 'r', identity: {'; '.join(error_lines(exc.errors()))}"
    try:
        event = CustomerEvent.model_validate(copy.deepcopy(body), context={ATTRIBUTE_BUDGET_CONTEXT: budget})
    except ValidationError as exc:
        return "refused", f"rule 'r': event invalid for DM Hub: {'; '.join(error_lines(exc.errors()))}"
    return "mapped", event


def _same(body: dict[str, Any], budget: AttributeBudget, identity: dict[str, Any] | None = IDENTITY) -> str:
    """Assert both verdicts agree; returns how the engine decided (plain, pydantic, refused)."""
    engine, model = _engine(body, budget, identity), _model(body, budget, identity)
    if model[0] == "refused":
        # the kinds check runs only on an accepted event; a refusal must be the model's words
        assert engine == model, body
        return "refused"
    if engine[0] == "refused":  # accepted by the model, refused by an attribute's kind
        assert engine[1].startswith("rule 'r': event invalid for DM Hub: "), engine
        return "refused"
    mapped: MappedEvent = engine[1]
    event: CustomerEvent = model[1]
    way = "plain" if mapped._model is None else "pydantic"  # before .event makes the model
    assert mapped.checked.to_request() == event.to_request(), body
    assert mapped.checked.extras == event.custom_attributes
    assert mapped.event.to_request() == event.to_request()  # the model on demand is the same
    return way


def _single_changes() -> list[tuple[bool, str, Any]]:
    return [(custom, name, value) for custom in (True, False) for name in _FIELDS for value in [*_VALUES, "<del>"]]


@pytest.mark.parametrize("budget", BUDGETS, ids=["budget5", "budget16"])
def test_every_single_change_of_an_event_gets_the_models_verdict(budget: AttributeBudget) -> None:
    seen: dict[str, int] = {}
    for custom, name, value in _single_changes():
        body = _body(custom)
        if value == "<del>":
            body.pop(name, None)
        else:
            body[name] = value
        way = _same(body, budget)
        seen[way] = seen.get(way, 0) + 1
    # the cases reach every way, so none of the branches is left untested
    assert seen.get("plain", 0) > 100 and seen.get("pydantic", 0) > 20 and seen.get("refused", 0) > 100, seen


@settings(max_examples=1500, deadline=None)
@given(st.booleans(), st.sampled_from(BUDGETS),
       st.lists(st.tuples(st.sampled_from(_FIELDS), st.sampled_from(_VALUES) | st.text(max_size=8)), max_size=4))
def test_generated_events_get_the_models_verdict(custom: bool, budget: AttributeBudget,
                                                 changes: list[tuple[str, Any]]) -> None:
    body = _body(custom)
    body.update(changes)
    _same(body, budget)


_IDENTITY_VALUES = ["", "a", "x" * 32, "x" * 33, "x" * 128, "x" * 129, "x" * 255, "x" * 256, "-a", "Wechat", "\ud800",
                    "微信", None]


@pytest.mark.parametrize("key", ["type", "value", "name"])
@pytest.mark.parametrize("value", _IDENTITY_VALUES)
def test_identities_get_the_models_verdict(key: str, value: Any) -> None:
    identity = {**IDENTITY, key: value}
    _same(_body(True), BUDGETS[0], identity)


def test_json_plain_takes_json_only() -> None:
    assert json_plain({"a": [1, 2.5, "x", None, True, {"b": []}]})
    for value in _FOREIGN:
        assert not json_plain({"a": value}), value
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    assert not json_plain(deep)  # too deep to be written without pydantic: it decides instead


# -- the queued message --------------------------------------------------------------------------------

REQUEST = WebhookRequest(method="POST", source="taobao", account="shop1", body=b"", query={}, raw_query="",
                         headers={}, received_at=1_714_557_600.0, request_id="req-1")


def _queued_same(mapped: MappedEvent, budget: AttributeBudget) -> str:
    try:
        got = queued_event("taobao", REQUEST, mapped, budget)
    except QueuedEventError as exc:
        got_refusal: str | None = str(exc)
    else:
        got_refusal = None
    key = f"taobao#shop1#{mapped.checked.externalId}"
    try:
        model = _queued_model("taobao", REQUEST, mapped, key, budget)
    except QueuedEventError as exc:
        assert got_refusal == str(exc)
        return "refused"
    assert got_refusal is None, got_refusal
    message = got.to_message()
    assert message == model.to_message()
    # the sender reads what the queue carries and sends DM Hub the event as queued (pydantic's
    # JSON mode writes a NaN attribute as null, which no DM Hub body carries)
    wire = read_queued_event(json.loads(json.dumps(message, ensure_ascii=False)), budget)
    assert wire.event.to_request() == {k: v for k, v in message["event"].items() if v is not None}
    return type(got).__name__


@pytest.mark.parametrize("budget", BUDGETS, ids=["budget5", "budget16"])
def test_queued_messages_are_the_models(budget: AttributeBudget) -> None:
    seen: dict[str, int] = {}
    for custom, name, value in _single_changes():
        if value is None or value == "":
            continue  # the engine leaves a field out rather than set it to nothing
        body = _body(custom)
        body[name] = value
        for identity in (IDENTITY, None):
            try:
                mapped = checked_event("r", body, identity, KINDS, budget)
            except MappingError:
                continue
            way = _queued_same(mapped, budget)
            seen[way] = seen.get(way, 0) + 1
    # plain messages, pydantic ones (foreign values) and refusals (no identity, no customer) all occur
    assert seen.get("WireQueuedEvent", 0) > 100 and seen.get("QueuedEvent", 0) > 5 and seen.get("refused", 0) > 50, seen


def test_a_long_external_id_is_namespaced_by_its_hash_in_both() -> None:
    body = {**_body(True), "externalId": "k" * 255}
    mapped = checked_event("r", body, IDENTITY, KINDS, BUDGETS[0])
    assert _queued_same(mapped, BUDGETS[0]) == "WireQueuedEvent"
    assert queued_event("taobao", REQUEST, mapped, BUDGETS[0]).to_message()["event"]["externalId"].startswith(
        "taobao:shop1:~sha256:")
