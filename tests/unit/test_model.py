"""Every rule of the DM Hub CustomerEvent model, both sides of each limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dmhub_adapter.model import CustomerEvent, Identity, QueuedEvent, StoredCustomerEvent
from dmhub_adapter.model.customer_event import ATTRIBUTE_BUDGET_CONTEXT, AttributeBudget

BASE = {"event": "c_apply_card", "date": "2017-06-07T03:43:00Z", "externalId": "x1"}


def event(**overrides: object) -> CustomerEvent:
    return CustomerEvent.model_validate({**BASE, **overrides})


@pytest.mark.parametrize(
    ("field", "limit"),
    [("event", 32), ("targetId", 255), ("targetName", 255), ("tag", 255), ("summary", 1024)],
)
def test_length_limits_accept_the_limit_and_refuse_one_more(field: str, limit: int) -> None:
    prefix = "c_" if field == "event" else ""
    at_limit = prefix + "a" * (limit - len(prefix))
    kind = {} if field == "event" else {"event": "wechat_follow"}  # targetId & co: built-in types only
    assert getattr(event(**kind, **{field: at_limit}), field) == at_limit
    with pytest.raises(ValidationError, match=field):
        event(**kind, **{field: at_limit + "a"})


def test_summary_limit_counts_characters_not_bytes() -> None:
    chinese = "汉" * 1024  # 3 bytes each in UTF-8, still 1024 characters
    assert event(event="wechat_follow", summary=chinese).summary == chinese


@pytest.mark.parametrize("field", ["targetId", "targetName", "summary"])
def test_custom_events_never_carry_target_or_summary(field: str) -> None:
    with pytest.raises(ValidationError, match=f"custom event types take no {field}"):
        event(**{field: "x"})
    assert getattr(event(event="wechat_follow", **{field: "x"}), field) == "x"


def test_referrer_is_a_built_in_field() -> None:
    made = event(referrer="https://example.com/a")
    assert made.referrer == "https://example.com/a" and made.custom_attributes == {}


def budget_context(size: int) -> dict[str, object]:
    return {ATTRIBUTE_BUDGET_CONTEXT: AttributeBudget.of(size)}


def test_the_budget_of_sixteen_allows_sixteen_attributes_and_counts_kinds() -> None:
    sixteen = {f"a{i}": "x" for i in range(16)}
    made = CustomerEvent.model_validate({**BASE, **sixteen}, context=budget_context(16))
    assert len(made.custom_attributes) == 16
    with pytest.raises(ValidationError, match="at most 16"):
        CustomerEvent.model_validate({**BASE, **sixteen, "a16": "x"}, context=budget_context(16))
    with pytest.raises(ValidationError, match="at most 5"):
        CustomerEvent.model_validate({**BASE, **sixteen})  # no context: the seed's five


def queued(attributes: dict[str, object], kinds: dict[str, str], size: int) -> QueuedEvent:
    return QueuedEvent.model_validate(
        {"source": "s", "account": "a", "claim_key": "k", "identity": {"type": "wechat", "value": "o"},
         "event": {**BASE, **attributes}, "attribute_kinds": kinds},
        context=budget_context(size),
    )


def test_per_kind_counts_with_sixteen_ten_text_three_quantity_three_amount() -> None:
    text = {f"t{i}": "x" for i in range(10)}
    quantities = {f"q{i}": i for i in range(3)}
    amounts = {f"m{i}": "1.50" for i in range(3)}
    kinds = {**dict.fromkeys(quantities, "quantity"), **dict.fromkeys(amounts, "amount")}
    made = queued({**text, **quantities, **amounts}, kinds, 16)
    assert made.attribute_kinds == kinds
    assert "attribute_kinds" in made.model_dump()
    with pytest.raises(ValidationError, match="at most 10 text"):
        queued({**text, "t10": "x"}, {}, 16)
    with pytest.raises(ValidationError, match="at most 3 quantity"):
        queued({**quantities, "q3": 1}, {**dict.fromkeys(quantities, "quantity"), "q3": "quantity"}, 16)
    with pytest.raises(ValidationError, match="at most 3 amount"):
        queued({**amounts, "m3": 1}, {**dict.fromkeys(amounts, "amount"), "m3": "amount"}, 16)
    # with five, kinds are not counted: four quantities are fine
    assert queued({f"q{i}": i for i in range(4)}, {f"q{i}": "quantity" for i in range(4)}, 5)


def test_attribute_values_must_fit_their_kind() -> None:
    with pytest.raises(ValidationError, match="quantity and must be an integer"):
        queued({"n": "3"}, {"n": "quantity"}, 16)
    with pytest.raises(ValidationError, match="amount and must be a number"):
        queued({"m": "a lot"}, {"m": "amount"}, 16)
    with pytest.raises(ValidationError, match="does not carry"):
        queued({}, {"m": "amount"}, 16)
    assert queued({"m": "19.90", "n": 2}, {"m": "amount", "n": "quantity"}, 16)
    assert "attribute_kinds" not in queued({"m": "x"}, {}, 5).model_dump()


def test_the_budget_is_five_or_sixteen() -> None:
    with pytest.raises(ValueError, match="5 or 16"):
        AttributeBudget.of(10)


def test_event_is_required_and_not_empty() -> None:
    with pytest.raises(ValidationError):
        CustomerEvent.model_validate({"date": "2017-06-07T03:43:00Z"})
    with pytest.raises(ValidationError):
        event(event="")


def test_customer_id_is_a_long() -> None:
    assert event(customerId=2**63 - 1).customerId == 2**63 - 1
    for bad in (2**63, -(2**63) - 1, "123", 1.5, True):
        with pytest.raises(ValidationError):
            event(customerId=bad)


def test_score_is_an_integer() -> None:
    assert event(score=5).score == 5
    for bad in (1.5, "5"):
        with pytest.raises(ValidationError):
            event(score=bad)


@pytest.mark.parametrize(
    "bad",
    [
        "2017-06-07 03:43:00",
        "2017-06-07T03:43:00",
        "2017-06-07T03:43:00+08:00",
        "2017-06-07T03:43:00.123Z",
        "2017-02-30T03:43:00Z",
        "2017-06-07T24:00:00Z",
        "",
        1496807000,
    ],
)
def test_date_must_be_utc_seconds_with_z(bad: object) -> None:
    with pytest.raises(ValidationError, match="date"):
        event(date=bad)


def test_aware_datetimes_are_converted_to_utc_and_naive_refused() -> None:
    shanghai = timezone(timedelta(hours=8))
    assert event(date=datetime(2017, 6, 7, 11, 43, tzinfo=shanghai)).date == "2017-06-07T03:43:00Z"
    with pytest.raises(ValidationError, match="timezone"):
        event(date=datetime(2017, 6, 7, 11, 43))


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.timezones()))
def test_any_aware_datetime_round_trips_to_the_same_instant(moment: datetime) -> None:
    text = event(date=moment).date
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert parsed == moment.astimezone(UTC).replace(microsecond=0)


def test_custom_attributes_only_on_custom_events_and_at_most_five() -> None:
    five = {f"a{i}": i for i in range(5)}
    assert event(**five).custom_attributes == five
    with pytest.raises(ValidationError, match="at most 5"):
        event(**five, a5="x")
    with pytest.raises(ValidationError, match="only allowed on custom event types"):
        event(event="wechat_follow", touter="t1")
    assert event(event="wechat_follow").custom_attributes == {}


def test_custom_attribute_values_must_be_scalars() -> None:
    with pytest.raises(ValidationError, match="scalar"):
        event(touter={"nested": 1})


@pytest.mark.parametrize("field", ["id", "lastUpdated"])
def test_read_only_fields_are_refused_and_never_serialised(field: str) -> None:
    with pytest.raises(ValidationError, match="read-only"):
        event(**{field: 1 if field == "id" else "2017-06-07T05:38:52Z"})
    body = event(customerId=1).to_request()
    assert "id" not in body and "lastUpdated" not in body


def test_request_body_omits_unset_fields_and_keeps_custom_attributes() -> None:
    body = event(customerId=123456, touter="t00001").to_request()
    assert body == {
        "event": "c_apply_card",
        "date": "2017-06-07T03:43:00Z",
        "externalId": "x1",
        "customerId": 123456,
        "touter": "t00001",
    }


def test_stored_event_parses_the_seed_response_with_nulls_and_echoed_attributes() -> None:
    stored = StoredCustomerEvent.model_validate(
        {
            "id": 1,
            "customerId": 123456,
            "event": "c_apply_card",
            "targetId": "golden_card",
            "targetName": "金卡",
            "date": "2017-06-07T03:43:00Z",
            "source": "人民广场",
            "score": 0,
            "tag": None,
            "campaign": None,
            "campaignName": None,
            "contentName": None,
            "externalId": None,
            "lastUpdated": "2017-06-07T05:38:52Z",
            "touter": "t00001",
        }
    )
    assert stored.id == 1 and stored.lastUpdated == "2017-06-07T05:38:52Z"
    assert stored.custom_attributes == {"touter": "t00001"}


@pytest.mark.parametrize(
    ("echo", "expected"),
    [
        ({"id": "42", "customerId": "123456"}, 42),
        ({"id": 42, "customerId": "not a number", "date": "June", "score": "high"}, 42),
        ({"id": "evt-9f2"}, "evt-9f2"),
        ({"id": 42.0, "lastUpdated": 1717171717}, 42),
    ],
)
def test_a_created_event_needs_only_its_id_any_other_echo_is_accepted(
    echo: dict[str, object], expected: object
) -> None:
    assert StoredCustomerEvent.model_validate(echo).id == expected


@pytest.mark.parametrize("echo", [{}, {"id": None}, {"id": True}, {"id": ""}, {"id": [1]}])
def test_an_answer_without_an_id_is_refused(echo: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        StoredCustomerEvent.model_validate(echo)


@pytest.mark.parametrize(("field", "limit"), [("type", 32), ("value", 128)])
def test_identity_limits(field: str, limit: int) -> None:
    ok = {"type": "wechat", "value": "o1", field: "a" * limit}
    assert getattr(Identity(**ok), field) == "a" * limit
    with pytest.raises(ValidationError):
        Identity(**{**ok, field: "a" * (limit + 1)})


def test_identity_type_is_lower_case_with_hyphens() -> None:
    assert Identity(type="taobao-openuid", value="x").type == "taobao-openuid"
    with pytest.raises(ValidationError):
        Identity(type="Taobao OpenUID", value="x")


def test_queued_event_needs_identity_or_customer_and_an_external_id() -> None:
    queued = QueuedEvent(
        source="wechat",
        account="demo",
        claim_key="wechat#demo#x1",
        identity=Identity(type="wechat", value="o1"),
        event=event(),
    )
    data = queued.model_dump(mode="json")
    assert data["event"]["externalId"] == "x1" and data["identity"]["value"] == "o1"
    assert QueuedEvent.model_validate(data) == queued
    with pytest.raises(ValidationError, match="identity or a customerId"):
        QueuedEvent(source="s", account="a", claim_key="k", event=event())
    with pytest.raises(ValidationError, match="externalId"):
        QueuedEvent(
            source="s", account="a", claim_key="k", event=event(externalId=None, customerId=1)
        )


def test_date_digits_are_ascii() -> None:
    with pytest.raises(ValidationError, match="date"):
        event(date="２０１７-06-07T03:43:00Z")


def test_a_queued_event_from_the_queue_is_validated_in_full() -> None:
    # a built CustomerEvent is taken as built; JSON read off the queue meets every rule again
    queued = QueuedEvent(
        source="wechat", account="demo", claim_key="wechat#demo#x1",
        identity=Identity(type="wechat", value="o1"), event=event(),
    )
    data = queued.model_dump(mode="json")
    assert QueuedEvent.model_validate_json(json.dumps(data)) == queued
    for broken, problem in (
        ({"targetId": "t1"}, "take no targetId"),
        ({"id": 7}, "read-only"),
        ({f"a{i}": "x" for i in range(6)}, "at most 5"),
        ({"date": "2026-12-04 10:00:00"}, "YYYY-MM-DDTHH:MM:SSZ"),
    ):
        tampered = {**data, "event": {**data["event"], **broken}}
        with pytest.raises(ValidationError, match=problem):
            QueuedEvent.model_validate_json(json.dumps(tampered))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_an_amount_is_a_finite_number(value: float) -> None:
    from dmhub_adapter.model.rules import check_attribute_value

    with pytest.raises(ValueError, match="must be a number"):
        check_attribute_value("payment", "amount", value)
    check_attribute_value("payment", "amount", 19.9)
    check_attribute_value("payment", "amount", "19.90")
