"""GET /v1/customerevents/{id} and GET /v1/customerevents: every query parameter of the seed,
partitions by event year, and DM Hub's error answers."""

from __future__ import annotations

import pytest

from dmhub_adapter_tools.emulator.server import EmulatorServer
from tests.integration.emulator.conftest import Api, field_errors


@pytest.fixture(autouse=True)
def seed_rules(server: EmulatorServer) -> None:
    """These tests hold the emulator to the seed (2018-05); the current rules have their own."""
    server.configure(rules="2018")


def ids(response_body: list[dict[str, object]]) -> list[object]:
    return [e["id"] for e in response_body]


# ---------------------------------------------------------------------- get one
def test_get_returns_the_stored_record(api: Api) -> None:
    created = api.create(externalId="x1", touter="t").json()
    response = api.get(f"/v1/customerevents/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_unknown_id_is_a_500(api: Api) -> None:
    response = api.get("/v1/customerevents/999")
    assert response.status_code == 500


def test_non_numeric_id_is_a_plain_400(api: Api) -> None:
    response = api.get("/v1/customerevents/abc")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("date", "partition"),
    [
        ("2025-07-01T00:00:00Z", "2018"),
        ("2018-01-01T00:00:00Z", "2018"),
        ("2017-12-31T23:59:59Z", "2017"),
        ("2017-01-01T00:00:00Z", "2017"),
        ("2016-12-31T23:59:59Z", "2016"),
        ("2009-05-05T00:00:00Z", "2016"),
    ],
)
def test_partitions_by_event_year(api: Api, date: str, partition: str) -> None:
    event_id = api.create(date=date).json()["id"]
    for candidate in ("2018", "2017", "2016"):
        response = api.get(f"/v1/customerevents/{event_id}", partition=candidate)
        assert response.status_code == (200 if candidate == partition else 500), candidate
        listed = api.get("/v1/customerevents", partition=candidate).json()
        assert ids(listed) == ([event_id] if candidate == partition else [])
    # without a partition only the default (2018 and later) is visible
    default = api.get(f"/v1/customerevents/{event_id}")
    assert default.status_code == (200 if partition == "2018" else 500)
    assert ids(api.get("/v1/customerevents").json()) == ([event_id] if partition == "2018" else [])


def test_unknown_partition_is_a_validation_error(api: Api) -> None:
    assert set(field_errors(api.get("/v1/customerevents", partition="2015"))) == {"partition"}
    assert set(field_errors(api.get("/v1/customerevents/1", partition="x"))) == {"partition"}


# ---------------------------------------------------------------------- query
@pytest.fixture
def stored(api: Api, server: EmulatorServer) -> list[dict[str, object]]:
    """Six events, one minute of lastUpdated apart, over two customers and three types."""
    specs = [
        (1, "c_a", "2024-01-05T00:00:00Z"),
        (2, "c_b", "2024-01-03T00:00:00Z"),
        (1, "c_c", "2024-01-04T00:00:00Z"),
        (2, "c_a", "2024-01-01T00:00:00Z"),
        (1, "c_b", "2024-01-06T00:00:00Z"),
        (2, "c_c", "2024-01-02T00:00:00Z"),
    ]
    events = []
    for customer, kind, date in specs:
        events.append(api.create(customerId=customer, event=kind, date=date).json())
        server.advance_clock(60)
    return events


def test_query_defaults_to_id_order(api: Api, stored: list[dict[str, object]]) -> None:
    response = api.get("/v1/customerevents")
    assert response.status_code == 200
    assert response.json() == stored


def test_query_by_customer(api: Api, stored: list[dict[str, object]]) -> None:
    assert ids(api.get("/v1/customerevents", customerId=2).json()) == [2, 4, 6]
    assert api.get("/v1/customerevents", customerId=3).json() == []
    assert set(field_errors(api.get("/v1/customerevents", customerId="x"))) == {"customerId"}


def test_query_by_event_list(api: Api, stored: list[dict[str, object]]) -> None:
    assert ids(api.get("/v1/customerevents", event="c_a").json()) == [1, 4]
    assert ids(api.get("/v1/customerevents", event="c_a,c_c").json()) == [1, 3, 4, 6]
    assert ids(api.get("/v1/customerevents", event="c_a, c_b", customerId=1).json()) == [1, 5]


def test_query_by_last_updated_range_is_inclusive(api: Api, stored: list[dict[str, object]]) -> None:
    # lastUpdated: 00:00, 00:01, ... 00:05 on 2024-01-01
    assert ids(api.get("/v1/customerevents", lastUpdatedFrom="2024-01-01T00:02:00Z").json()) == [3, 4, 5, 6]
    assert ids(api.get("/v1/customerevents", lastUpdatedTo="2024-01-01T00:01:00Z").json()) == [1, 2]
    both = api.get("/v1/customerevents", lastUpdatedFrom="2024-01-01T00:01:30Z", lastUpdatedTo="2024-01-01T00:03:00Z")
    assert ids(both.json()) == [3, 4]
    bad = api.get("/v1/customerevents", lastUpdatedFrom="2024-01-01 00:00:00")
    assert set(field_errors(bad)) == {"lastUpdatedFrom"}
    assert set(field_errors(api.get("/v1/customerevents", lastUpdatedTo="yesterday"))) == {"lastUpdatedTo"}


def test_query_sorting(api: Api, stored: list[dict[str, object]]) -> None:
    assert ids(api.get("/v1/customerevents", sidx="date").json()) == [4, 6, 2, 3, 1, 5]
    assert ids(api.get("/v1/customerevents", sidx="date", sord="desc").json()) == [5, 1, 3, 2, 6, 4]
    assert ids(api.get("/v1/customerevents", sidx="lastUpdated", sord="desc").json()) == [6, 5, 4, 3, 2, 1]
    assert ids(api.get("/v1/customerevents", sord="asc").json()) == [1, 2, 3, 4, 5, 6]
    assert ids(api.get("/v1/customerevents", sidx="event", sord="desc").json())[:2] == [6, 3]
    assert set(field_errors(api.get("/v1/customerevents", sord="up"))) == {"sord"}
    assert set(field_errors(api.get("/v1/customerevents", sidx="nope"))) == {"sidx"}


def test_query_max_rows_and_pages(api: Api, stored: list[dict[str, object]]) -> None:
    assert ids(api.get("/v1/customerevents", max=4).json()) == [1, 2, 3, 4]
    assert ids(api.get("/v1/customerevents", rows=4, page=1).json()) == [1, 2, 3, 4]
    assert ids(api.get("/v1/customerevents", rows=4, page=2).json()) == [5, 6]
    assert api.get("/v1/customerevents", rows=4, page=3).json() == []
    assert ids(api.get("/v1/customerevents", rows=2, page=2, sord="desc").json()) == [4, 3]
    # max caps a page too
    assert ids(api.get("/v1/customerevents", rows=4, page=1, max=3).json()) == [1, 2, 3]
    # without rows, pages are max long
    assert ids(api.get("/v1/customerevents", max=4, page=2).json()) == [5, 6]
    for name in ("max", "rows", "page"):
        assert set(field_errors(api.get("/v1/customerevents", **{name: 0}))) == {name}
        assert set(field_errors(api.get("/v1/customerevents", **{name: "x"}))) == {name}


def test_query_max_defaults_to_20_and_is_capped_at_1000(api: Api, server: EmulatorServer) -> None:
    for second in range(25):
        api.create(date=f"2024-02-01T00:00:{second:02d}Z")
    assert len(api.get("/v1/customerevents").json()) == 20
    assert len(api.get("/v1/customerevents", max=25).json()) == 25
    assert len(api.get("/v1/customerevents", max=1000).json()) == 25
    assert len(api.get("/v1/customerevents", max=5000).json()) == 25


def test_query_by_id_range(api: Api, stored: list[dict[str, object]]) -> None:
    assert ids(api.get("/v1/customerevents", idFrom=2, idTo=4).json()) == [2, 3, 4]


def test_query_partition_combines_with_filters(api: Api) -> None:
    api.create(date="2017-03-03T00:00:00Z", customerId=1)
    api.create(date="2017-04-04T00:00:00Z", customerId=2)
    api.create(date="2020-01-01T00:00:00Z", customerId=1)
    assert ids(api.get("/v1/customerevents", partition="2017", customerId=1).json()) == [1]
    assert ids(api.get("/v1/customerevents", partition="2018", customerId=1).json()) == [3]
    assert ids(api.get("/v1/customerevents", partition="", customerId=1).json()) == [3]
