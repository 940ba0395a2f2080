"""The emulator's DM Hub rules as pure functions, and their agreement with the adapter's own
CustomerEvent model on every limit both enforce."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dmhub_adapter.model.customer_event import CustomerEvent
from dmhub_adapter_tools.emulator.rules import (
    QUERY_MAX_LIMIT,
    PlainBadRequest,
    ValidationFailed,
    normalize_partition,
    parse_event_query,
    partition_of,
    render_event,
    validate_event,
    validate_identities,
)
from dmhub_adapter_tools.emulator.server import DmhubEmulator
from dmhub_adapter_tools.emulator.state import EmulatorConfig, EmulatorState


@pytest.mark.parametrize(
    ("date", "partition"),
    [
        ("2099-01-01T00:00:00Z", "2018"),
        ("2018-01-01T00:00:00Z", "2018"),
        ("2017-12-31T23:59:59Z", "2017"),
        ("2016-12-31T23:59:59Z", "2016"),
        ("1970-01-01T00:00:00Z", "2016"),
    ],
)
def test_partition_of_under_the_seed(date: str, partition: str) -> None:
    assert partition_of(date, "2018") == partition


@pytest.mark.parametrize(
    ("date", "partition"),
    [
        ("2099-01-01T00:00:00Z", "209901"),
        ("2019-01-01T00:00:00Z", "201901"),
        ("2024-11-30T23:59:59Z", "202411"),
        ("2018-12-31T23:59:59Z", "2018"),
        ("2017-12-31T23:59:59Z", "2017"),
        ("2015-06-01T00:00:00Z", "2016"),
    ],
)
def test_partition_of_under_the_current_rules(date: str, partition: str) -> None:
    assert partition_of(date) == partition


def test_normalize_partition() -> None:
    assert normalize_partition(None, "2018") == normalize_partition("", "2018") == "2018"
    assert normalize_partition("2016", "2018") == "2016"
    with pytest.raises(ValidationFailed):
        normalize_partition("201901", "2018")
    # current rules: no parameter is the current time's month, YYYYMM from 201901
    assert normalize_partition(None, now=1732924800) == "202411"  # 2024-11-30
    assert normalize_partition("201901") == "201901" and normalize_partition("2017") == "2017"
    for bad in ("201813", "201812", "2019", "20190", "x"):
        with pytest.raises(ValidationFailed):
            normalize_partition(bad)


def test_query_defaults_and_clamp() -> None:
    query = parse_event_query({}, "2018")
    assert (query.partition, query.max, query.page, query.sidx, query.descending) == ("2018", 20, 1, "id", False)
    assert parse_event_query({"max": "5000"}).max == QUERY_MAX_LIMIT
    assert parse_event_query({"max": "10", "rows": "3", "page": "2"}).page_slice() == slice(3, 6)
    assert parse_event_query({"max": "2", "rows": "3", "page": "2"}).page_slice() == slice(3, 5)
    assert parse_event_query({"event": "a, b,,c"}).events == frozenset({"a", "b", "c"})


def test_query_collects_every_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_event_query({"max": "0", "sord": "x", "sidx": "y", "partition": "1", "customerId": "z"})
    assert {e.field_name for e in caught.value.errors} == {"max", "sord", "sidx", "partition", "customerId"}


def test_render_puts_nulls_defaults_and_custom_attributes_last() -> None:
    out = render_event(
        {
            "id": 3,
            "customerId": 1,
            "event": "c_x",
            "date": "2024-01-01T00:00:00Z",
            "lastUpdated": "2024-01-01T00:00:01Z",
            "k": "v",
        }
    )
    assert out["score"] == 0
    assert out["targetId"] is None
    assert "summary" not in out
    assert list(out)[-1] == "k"


def test_identities_shape() -> None:
    assert validate_identities(None) == []
    with pytest.raises(PlainBadRequest):
        validate_identities({"identityType": "x"})
    with pytest.raises(ValidationFailed) as caught:
        validate_identities(["x", {"identityType": "wechat", "identityValue": "v"}])
    assert [e.field_name for e in caught.value.errors] == ["customerIdentities[0]"]


# ---------------------------------------------------------------------- model and emulator agree
BASE: dict[str, Any] = {"customerId": 1, "event": "c_x", "date": "2024-01-02T03:04:05Z", "externalId": "e"}
AGREEMENT_CASES: list[dict[str, Any]] = [
    {},
    {"event": "c_" + "x" * 30},
    {"event": "c_" + "x" * 31},
    {"event": ""},
    {"targetId": "t" * 255},
    {"targetId": "t" * 256},
    {"targetName": "名" * 255},
    {"targetName": "名" * 256},
    {"tag": "a" * 255},
    {"tag": "a" * 256},
    {"summary": "s" * 1024},
    {"summary": "s" * 1025},
    {"date": "2024-01-02 03:04:05"},
    {"date": "2024-02-30T00:00:00Z"},
    {"date": "2024-01-02T03:04:05+08:00"},
    {"score": 3},
    {"score": 1.5},
    {"id": 1},
    {"lastUpdated": "2024-01-01T00:00:00Z"},
    {f"a{i}": i for i in range(5)},
    {f"a{i}": i for i in range(6)},
    {"event": "open_page"},
    {"event": "open_page", "a1": "x"},
    {"customerId": 2**63 - 1},
    {"customerId": 2**63},
]


@pytest.mark.parametrize("change", AGREEMENT_CASES)
def test_model_and_emulator_agree(change: dict[str, Any]) -> None:
    body = {**BASE, **change}
    try:
        CustomerEvent.model_validate(body)
        model_ok = True
    except ValidationError:
        model_ok = False
    try:
        validate_event(body)
        emulator_ok = True
    except ValidationFailed:
        emulator_ok = False
    assert model_ok == emulator_ok, body


@given(
    event=st.from_regex(r"c_[a-z_]{1,30}", fullmatch=True),
    target=st.text(max_size=255),
    summary=st.text(max_size=1024),
    score=st.integers(-(2**31), 2**31 - 1),
    attributes=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
            lambda k: k not in CustomerEvent.model_fields and k not in CustomerEvent.READ_ONLY
        ),
        st.text(max_size=20),
        max_size=5,
    ),
)
def test_whatever_the_model_sends_the_emulator_accepts(
    event: str, target: str, summary: str, score: int, attributes: dict[str, str]
) -> None:
    model = CustomerEvent.model_validate(
        {**BASE, "event": event, "tag": target, "campaign": summary, "score": score, **attributes}
    )
    for rules in ("current", "2018"):  # what the model sends holds under both rule sets
        clean = validate_event(model.to_request(), rules=rules)
        assert clean["event"] == event
        assert {k: clean[k] for k in attributes} == attributes
    plain = "x" + event[2:]  # a built-in type: it keeps targetName and summary
    built_in = CustomerEvent.model_validate({**BASE, "event": plain, "targetName": target, "summary": summary})
    assert validate_event(built_in.to_request())["event"] == plain


@pytest.mark.parametrize("field", ["targetId", "targetName", "summary"])
def test_current_rules_refuse_target_and_summary_on_custom_events_the_seed_took_them(field: str) -> None:
    body = {**BASE, "event": "c_order", field: "x"}
    with pytest.raises(ValidationFailed) as caught:
        validate_event(body)
    assert caught.value.errors[0].field_name == field
    assert validate_event(body, rules="2018")[field] == "x"
    assert validate_event({**body, "event": "order"})[field] == "x"


def test_referrer_is_built_in_and_the_budget_is_five_or_sixteen() -> None:
    assert validate_event({**BASE, "event": "order", "referrer": "https://a"})["referrer"] == "https://a"
    sixteen = {f"a{i}": "x" for i in range(16)}
    assert len(validate_event({**BASE, "event": "c_o", **sixteen}, custom_attributes=16)) > 16
    with pytest.raises(ValidationFailed):
        validate_event({**BASE, "event": "c_o", **sixteen, "a16": "x"}, custom_attributes=16)
    with pytest.raises(ValidationFailed):
        validate_event({**BASE, "event": "c_o", **{f"a{i}": "x" for i in range(6)}})


# ---------------------------------------------------------------------- the app without sockets
def test_handle_without_sockets() -> None:
    app = DmhubEmulator(EmulatorConfig(seed=3))
    token = app.handle("GET", "/security/accesstoken?grant_type=client_credentials&appid=demo-app&secret=demo-secret")
    assert token.status == 200
    access = token.body["access_token"]
    created = app.handle(
        "POST",
        f"/v1/customerevents?access_token={access}",
        b'{"customerId":1,"event":"x","date":"2024-01-01T00:00:00Z"}',
    )
    assert created.status == 201
    assert app.state.counters()["events_created"] == 1


def test_seeded_tokens_are_reproducible() -> None:
    tokens = []
    for _ in range(2):
        state = EmulatorState(EmulatorConfig(seed=11))
        tokens.append(
            state.issue_token({"grant_type": "client_credentials", "appid": "demo-app", "secret": "demo-secret"})[
                "access_token"
            ]
        )
    assert tokens[0] == tokens[1]


def test_fail_next_validation() -> None:
    state = EmulatorState()
    with pytest.raises(ValueError):
        state.fail_next(0)
    with pytest.raises(ValueError):
        state.fail_next(1, 99)
    with pytest.raises(ValueError):
        state.fail_next(1, 500, endpoint="nope")


def test_max_in_window_counts_half_open_one_second_windows() -> None:
    from dmhub_adapter_tools.emulator.state import max_in_window, rate_summary

    assert max_in_window([]) == 0
    assert max_in_window([5.0]) == 1
    assert max_in_window([0.0, 0.5, 0.99, 1.0]) == 3  # [0, 1) holds three: 1.0 is outside it
    assert max_in_window([0.0, 1.0, 2.0]) == 1
    assert max_in_window([0.9, 1.1, 1.5, 1.8, 2.2]) == 4  # windows need not start on whole seconds
    assert max_in_window([3.0, 1.0, 2.5, 2.9, 3.1]) == 4  # order does not matter
    summary = rate_summary([10.1, 10.7, 11.05, 12.0])
    assert summary == {
        "requests": 4,
        "max_in_any_1s_window": 3,
        "per_second": {"10": 2, "11": 1, "12": 1},
    }
