"""POST /v1/customerevents: every rule of the CustomerEvent model, both sides of each limit,
the response shape, dedup/update and the error shapes."""

from __future__ import annotations

from typing import Any

import pytest

from dmhub_adapter_tools.emulator.server import EmulatorServer
from tests.integration.emulator.conftest import Api, field_errors

SEED_REQUEST = {
    "customerId": "123456",
    "event": "c_apply_card",
    "targetId": "golden_card",
    "targetName": "金卡",
    "date": "2017-06-07T03:43:00Z",
    "source": "人民广场",
    "touter": "t00001",
}


@pytest.fixture(autouse=True)
def seed_rules(server: EmulatorServer) -> None:
    """These tests hold the emulator to the seed (2018-05); the current rules have their own."""
    server.configure(rules="2018")


def test_seed_example_round_trips_in_the_seed_response_shape(api: Api, server: EmulatorServer) -> None:
    server.set_clock(1496814532)  # 2017-06-07T05:48:52Z
    response = api.post("/v1/customerevents", SEED_REQUEST)
    assert response.status_code == 201
    body = response.json()
    assert list(body) == [
        "id",
        "customerId",
        "event",
        "targetId",
        "targetName",
        "date",
        "source",
        "score",
        "tag",
        "campaign",
        "campaignName",
        "contentName",
        "externalId",
        "lastUpdated",
        "touter",
    ]
    assert body == {
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
        "lastUpdated": "2017-06-07T05:48:52Z",
        "touter": "t00001",
    }
    assert server.state.counters()["events_created"] == 1


def test_every_field_is_stored_and_summary_appears_when_set(api: Api) -> None:
    fields = {
        "targetId": "t",
        "targetName": "n",
        "source": "s",
        "contentName": "c",
        "score": 7,
        "tag": "a,b",
        "campaign": "cmp",
        "campaignName": "Campaign",
        "summary": "摘要",
        "externalId": "wechat:x:1",
    }
    body = api.create(**fields).json()
    assert {k: body[k] for k in fields} == fields
    assert list(body).index("summary") == list(body).index("contentName") + 1
    got = api.get(f"/v1/customerevents/{body['id']}").json()
    assert got == body


def _valid(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"customerId": 1, "event": "c_x", "date": "2024-01-02T03:04:05Z"}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()


@pytest.mark.parametrize(
    ("ok", "bad", "field"),
    [
        # event: required, at most 32 characters
        ({"event": "c_" + "e" * 30}, {"event": "c_" + "e" * 31}, "event"),
        ({"event": "open_page"}, {"event": ""}, "event"),
        ({"event": "c_x"}, {"event": _DROP}, "event"),
        ({"event": "c_x"}, {"event": None}, "event"),
        ({"event": "c_x"}, {"event": {"nested": 1}}, "event"),
        # targetId, targetName, tag: at most 255; summary: at most 1024 (characters, Chinese too)
        ({"targetId": "t" * 255}, {"targetId": "t" * 256}, "targetId"),
        ({"targetName": "名" * 255}, {"targetName": "名" * 256}, "targetName"),
        ({"tag": "a" * 255}, {"tag": "a" * 256}, "tag"),
        ({"summary": "摘" * 1024}, {"summary": "摘" * 1025}, "summary"),
        ({"targetId": None}, {"targetId": ["list"]}, "targetId"),
        # customerId: required Long (numbers and numeric strings, as Jackson reads them)
        ({"customerId": 2**63 - 1}, {"customerId": 2**63}, "customerId"),
        ({"customerId": "42"}, {"customerId": "abc"}, "customerId"),
        ({"customerId": -(2**63)}, {"customerId": 1.5}, "customerId"),
        ({"customerId": 1}, {"customerId": _DROP}, "customerId"),
        ({"customerId": 1}, {"customerId": True}, "customerId"),
        # date: required, UTC yyyy-MM-ddTHH:mm:ssZ, a real time
        ({"date": "2017-06-07T12:20:20Z"}, {"date": "2017-06-07 12:20:20"}, "date"),
        ({"date": "2024-02-29T23:59:59Z"}, {"date": "2023-02-29T00:00:00Z"}, "date"),
        ({"date": "2024-01-01T00:00:00Z"}, {"date": "2024-01-01T00:00:00+08:00"}, "date"),
        ({"date": "2024-01-01T00:00:00Z"}, {"date": "2024-01-01T00:00:00.000Z"}, "date"),
        ({"date": "2024-01-01T00:00:00Z"}, {"date": _DROP}, "date"),
        ({"date": "2024-01-01T00:00:00Z"}, {"date": 1704067200}, "date"),
        # score: Integer
        ({"score": 2**31 - 1}, {"score": 2**31}, "score"),
        ({"score": -5}, {"score": 1.5}, "score"),
        ({"score": "3"}, {"score": "three"}, "score"),
    ],
)
def test_field_limits_both_sides(api: Api, ok: dict[str, Any], bad: dict[str, Any], field: str) -> None:
    accepted = api.post("/v1/customerevents", _valid(**ok))
    assert accepted.status_code == 201, accepted.text
    refused = api.post("/v1/customerevents", _valid(**bad))
    errors = field_errors(refused)
    assert set(errors) == {field}, errors


def test_numeric_strings_are_stored_as_numbers(api: Api) -> None:
    body = api.post("/v1/customerevents", _valid(customerId="42", score="3")).json()
    assert body["customerId"] == 42
    assert body["score"] == 3


def test_custom_attributes_at_most_five_on_custom_types(api: Api) -> None:
    five = {f"attr{i}": f"v{i}" for i in range(5)}
    body = api.post("/v1/customerevents", _valid(**five)).json()
    assert {k: body[k] for k in five} == five
    six = {f"attr{i}": i for i in range(6)}
    assert set(field_errors(api.post("/v1/customerevents", _valid(**six)))) == {"customAttributes"}


def test_built_in_types_take_no_custom_attributes(api: Api) -> None:
    assert api.post("/v1/customerevents", _valid(event="open_page")).status_code == 201
    errors = field_errors(api.post("/v1/customerevents", _valid(event="open_page", touter="t1")))
    assert set(errors) == {"touter"}


def test_custom_attribute_values_are_scalars(api: Api) -> None:
    assert api.post("/v1/customerevents", _valid(a=1, b=1.5, c=True, d=None, e="x")).status_code == 201
    assert set(field_errors(api.post("/v1/customerevents", _valid(a={"x": 1})))) == {"a"}


@pytest.mark.parametrize("name", ["id", "lastUpdated"])
def test_read_only_fields_are_refused(api: Api, server: EmulatorServer, name: str) -> None:
    value = 5 if name == "id" else "2024-01-01T00:00:00Z"
    errors = field_errors(api.post("/v1/customerevents", _valid(**{name: value})))
    assert set(errors) == {name}
    assert server.state.events() == []
    assert server.state.counters()["validation_errors"] == 1


def test_all_field_errors_come_at_once(api: Api) -> None:
    errors = field_errors(api.post("/v1/customerevents", {"event": "e" * 40, "id": 1, "score": "x"}))
    assert set(errors) == {"id", "customerId", "event", "date", "score"}


def test_registered_event_types_knob(api: Api, server: EmulatorServer) -> None:
    server.configure(event_types={"c_apply_card": ["touter"], "c_open": None})
    assert api.post("/v1/customerevents", _valid(event="c_apply_card", touter="t")).status_code == 201
    assert api.post("/v1/customerevents", _valid(event="c_open", anything="x")).status_code == 201
    # built-in types are not subject to the registry
    assert api.post("/v1/customerevents", _valid(event="subscribe")).status_code == 201
    assert set(field_errors(api.post("/v1/customerevents", _valid(event="c_unknown")))) == {"event"}
    assert set(field_errors(api.post("/v1/customerevents", _valid(event="c_apply_card", other="x")))) == {"other"}
    # a plain list names the types, any attributes allowed
    server.configure(event_types=["c_open"])
    assert api.post("/v1/customerevents", _valid(event="c_open", x="1")).status_code == 201
    assert set(field_errors(api.post("/v1/customerevents", _valid(event="c_apply_card")))) == {"event"}


@pytest.mark.parametrize(
    "content",
    [b"", b"   ", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"customerId": 1'],
)
def test_unusable_bodies_get_a_plain_400(api: Api, server: EmulatorServer, content: bytes) -> None:
    response = api.post("/v1/customerevents", content=content)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text
    assert server.state.counters()["bad_requests"] == 1


# ---------------------------------------------------------------------- dedup and update
def test_same_external_id_updates_the_same_event(api: Api, server: EmulatorServer) -> None:
    first = api.create(externalId="ext-1", targetName="first", touter="a").json()
    server.advance_clock(60)
    second = api.create(externalId="ext-1", targetName="second", date="2024-03-02T00:00:00Z").json()
    assert second["id"] == first["id"]
    assert second["targetName"] == "second"
    assert second["date"] == "2024-03-02T00:00:00Z"
    assert second["touter"] == "a"  # fields not sent are kept
    assert second["lastUpdated"] == "2024-01-01T00:01:00Z"
    assert first["lastUpdated"] == "2024-01-01T00:00:00Z"
    assert len(server.state.events()) == 1
    counters = server.state.counters()
    assert (counters["events_created"], counters["events_updated"]) == (1, 1)


def test_different_external_ids_are_different_events_even_with_the_same_triple(api: Api) -> None:
    first = api.create(externalId="ext-1").json()
    second = api.create(externalId="ext-2").json()
    assert first["id"] != second["id"]


def test_without_external_id_the_date_customer_event_triple_dedups(api: Api, server: EmulatorServer) -> None:
    first = api.create(targetName="one").json()
    again = api.create(targetName="two").json()
    assert again["id"] == first["id"]
    assert again["targetName"] == "two"
    others = [
        api.create(date="2024-03-01T08:00:01Z").json(),
        api.create(customerId=654321).json(),
        api.create(event="c_other").json(),
    ]
    assert len({first["id"], *(o["id"] for o in others)}) == 4
    assert len(server.state.events()) == 4


def test_external_id_update_moves_the_dedup_triple(api: Api) -> None:
    first = api.create(externalId="ext-1").json()
    api.create(externalId="ext-1", date="2024-05-05T00:00:00Z")
    # the old triple no longer points at the moved event
    fresh = api.create().json()
    assert fresh["id"] != first["id"]
    assert api.create(date="2024-05-05T00:00:00Z").json()["id"] == first["id"]


def test_concurrent_posts_of_one_external_id_store_one_event(api: Api, server: EmulatorServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = api.token
    body = {"customerId": 1, "event": "c_x", "date": "2024-01-01T00:00:00Z", "externalId": "race"}

    def call(_: int) -> int:
        response = api.http.post("/v1/customerevents", params={"access_token": token}, json=body)
        assert response.status_code == 201
        return int(response.json()["id"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert len(set(pool.map(call, range(32)))) == 1
    counters = server.state.counters()
    assert (counters["events_created"], counters["events_updated"]) == (1, 31)
