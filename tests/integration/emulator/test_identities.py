"""The customer-identity endpoints the sender resolves identities with."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dmhub_adapter_tools.emulator.server import EmulatorServer
from tests.integration.emulator.conftest import Api, field_errors


def upsert(api: Api, identities: list[dict[str, object]], **customer: object) -> httpx.Response:
    return api.post("/v1/customerandidentities", {"customer": customer, "customerIdentities": identities})


def wechat(openid: str, name: str | None = None) -> dict[str, object]:
    identity: dict[str, object] = {"identityType": "wechat", "identityValue": openid}
    if name is not None:
        identity["identityName"] = name
    return identity


def test_unknown_identity_gives_an_empty_array(api: Api) -> None:
    response = api.get("/v1/customeridentities", identityType="wechat", identityValue="o-unknown")
    assert response.status_code == 200
    assert response.json() == []


def test_upsert_creates_then_lookup_finds(api: Api, server: EmulatorServer) -> None:
    created = upsert(api, [wechat("o-1", "Fan")], name="Fan")
    assert created.status_code == 201
    customer = created.json()
    assert isinstance(customer["id"], int)
    assert customer["name"] == "Fan"
    found = api.get("/v1/customeridentities", identityType="wechat", identityValue="o-1").json()
    assert found == [
        {"customerId": customer["id"], "identityType": "wechat", "identityValue": "o-1", "identityName": "Fan"}
    ]
    assert api.get(f"/v1/customers/{customer['id']}").json() == customer
    assert server.state.counters()["customers_created"] == 1


def test_upsert_with_a_known_identity_updates_that_customer(api: Api, server: EmulatorServer) -> None:
    first = upsert(api, [wechat("o-1")], name="Old", city="Shanghai").json()
    second = upsert(
        api, [wechat("o-1"), {"identityType": "mobile", "identityValue": "13800000000"}], name="New", city=None
    )
    assert second.status_code == 200
    body = second.json()
    assert body["id"] == first["id"]
    assert body["name"] == "New"
    assert body["city"] == "Shanghai"  # the API cannot clear fields
    mobile = api.get("/v1/customeridentities", identityType="mobile", identityValue="13800000000").json()
    assert [i["customerId"] for i in mobile] == [first["id"]]
    assert len(server.state.customers()) == 1
    assert server.state.counters()["customers_updated"] == 1


def test_upsert_matches_by_mobile_when_no_identity_is_known(api: Api) -> None:
    first = upsert(api, [], mobile="13900000000").json()
    second = upsert(api, [wechat("o-2")], mobile="13900000000")
    assert second.status_code == 200
    assert second.json()["id"] == first["id"]


def test_different_identities_make_different_customers(api: Api) -> None:
    one = upsert(api, [wechat("o-1")]).json()["id"]
    two = upsert(api, [wechat("o-2")]).json()["id"]
    assert one != two
    by_ids = api.get("/v1/customeridentities", customerIds=f"{one},{two}").json()
    assert sorted(i["identityValue"] for i in by_ids) == ["o-1", "o-2"]


def test_identity_owned_by_another_customer_stays_there(api: Api) -> None:
    one = upsert(api, [wechat("o-1")]).json()["id"]
    two = upsert(api, [wechat("o-2")]).json()["id"]
    merged = upsert(api, [wechat("o-2"), wechat("o-1")]).json()
    assert merged["id"] == two
    owner = api.get("/v1/customeridentities", identityType="wechat", identityValue="o-1").json()
    assert owner[0]["customerId"] == one


@pytest.mark.parametrize(
    ("ok", "bad", "field"),
    [
        ({"identityType": "t" * 32}, {"identityType": "t" * 33}, "customerIdentities[0].identityType"),
        ({"identityValue": "v" * 128}, {"identityValue": "v" * 129}, "customerIdentities[0].identityValue"),
        ({"identityType": "wechat"}, {"identityType": ""}, "customerIdentities[0].identityType"),
        ({"identityValue": "x"}, {"identityValue": None}, "customerIdentities[0].identityValue"),
        ({"identityName": "n"}, {"identityName": 5}, "customerIdentities[0].identityName"),
    ],
)
def test_identity_limits_both_sides(
    api: Api, server: EmulatorServer, ok: dict[str, object], bad: dict[str, object], field: str
) -> None:
    base = {"identityType": "wechat", "identityValue": "o-9"}
    assert upsert(api, [{**base, **ok}]).status_code == 201
    errors = field_errors(upsert(api, [{**base, **bad, "identityValue": bad.get("identityValue", "o-10")}]))
    assert set(errors) == {field}
    assert len(server.state.customers()) == 1


def test_upsert_without_customer_is_a_plain_400(api: Api) -> None:
    response = api.post("/v1/customerandidentities", {"customerIdentities": [wechat("o-1")]})
    assert response.status_code == 400
    assert response.text == "No customer field found"
    assert api.post("/v1/customerandidentities", content=b"{").status_code == 400


def test_lookup_needs_type_and_value_or_customer_ids(api: Api) -> None:
    assert field_errors(api.get("/v1/customeridentities", identityType="wechat"))
    assert field_errors(api.get("/v1/customeridentities"))
    assert field_errors(api.get("/v1/customeridentities", customerIds="a,b"))


def test_unknown_customer_is_a_500(api: Api) -> None:
    assert api.get("/v1/customers/424242").status_code == 500


def test_concurrent_upserts_of_one_identity_make_one_customer(api: Api, server: EmulatorServer) -> None:
    token = api.token
    body = {"customer": {"name": "Same"}, "customerIdentities": [wechat("o-race")]}

    def call(_: int) -> httpx.Response:
        return api.http.post("/v1/customerandidentities", params={"access_token": token}, json=body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(call, range(32)))
    assert {r.json()["id"] for r in responses} == {server.state.customers()[0]["id"]}
    assert sorted(r.status_code for r in responses) == [200] * 31 + [201]
    assert len(server.state.customers()) == 1
    assert len(server.state.identities()) == 1
