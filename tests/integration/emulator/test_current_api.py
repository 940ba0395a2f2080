"""The emulator as DM Hub is today: the collector endpoints, API v2, the current partitions,
string error codes and a non-token body error (40201) for chosen event types."""

from __future__ import annotations

import base64

import httpx

from dmhub_adapter_tools.emulator.server import EmulatorServer
from tests.integration.emulator.conftest import START, Api, field_errors

EVENT = {"event": "c_order_paid", "date": "2024-03-01T08:00:00Z", "identityType": "wechat", "identityValue": "o1"}


def test_collector_batch_stores_identity_keyed_events_once_per_external_id(api: Api, server: EmulatorServer) -> None:
    events = [{**EVENT, "externalId": f"e{i}", "order_id": str(i)} for i in range(100)]
    answer = api.post("/v1/collector/batchPushEvents", {"events": events})
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    again = api.post("/v1/collector/batchPushEvents", {"events": events[:10]})
    assert again.json() == {"success": True}
    stored = server.state.events()
    assert len(stored) == 100 and {e["customerId"] for e in stored} == {server.state.customers()[0]["id"]}
    assert server.state.counters()["events_updated"] == 10


def test_collector_batch_with_one_bad_event_stores_none_and_names_it(api: Api, server: EmulatorServer) -> None:
    events = [{**EVENT, "externalId": f"e{i}"} for i in range(5)]
    events[3] = {**events[3], "targetId": "not on custom events"}
    errors = field_errors(api.post("/v1/collector/batchPushEvents", {"events": events}))
    assert set(errors) == {"events[3].targetId"}
    assert server.state.events() == []
    too_many = api.post("/v1/collector/batchPushEvents", {"events": [EVENT] * 101})
    assert "events" in field_errors(too_many)


def test_collector_single_push_and_a_missing_identity(api: Api, server: EmulatorServer) -> None:
    assert api.post("/v1/collector/pushevent", {**EVENT, "externalId": "x"}).json() == {"success": True}
    missing = {k: v for k, v in EVENT.items() if k != "identityValue"}
    assert "identityType" in field_errors(api.post("/v1/collector/pushevent", missing))
    assert len(server.state.events()) == 1


def test_refused_event_types_get_a_non_token_body_error_as_text_when_asked(api: Api, server: EmulatorServer) -> None:
    server.configure(refuse_events={"c_order_paid": 40201}, string_error_codes=True)
    refused = api.post("/v1/collector/pushevent", {**EVENT, "externalId": "x"})
    assert refused.json() == {"error_code": "40201", "error_description": "permission is not enough"}
    other = api.post("/v1/collector/pushevent", {**EVENT, "event": "c_other", "externalId": "y"})
    assert other.json() == {"success": True}
    bad_token = api.http.post("/v1/collector/pushevent", params={"access_token": "nope"}, json=EVENT)
    assert bad_token.json()["error_code"] == "40001"


def v2_token(http: httpx.Client, app: str = "demo-app", secret: str = "demo-secret") -> httpx.Response:
    basic = base64.b64encode(f"{app}:{secret}".encode()).decode()
    return http.post("/v2/oauth2/token", data={"grant_type": "client_credentials"},
                     headers={"Authorization": f"Basic {basic}"})


def test_v2_token_and_event_with_prefixed_attributes(api: Api, server: EmulatorServer) -> None:
    assert v2_token(api.http, secret="wrong").status_code == 401
    grant = v2_token(api.http).json()
    assert set(grant) >= {"access_token", "expires_in"}
    bearer = {"Authorization": f"Bearer {grant['access_token']}"}
    created = api.http.post("/v2/customerEvents", headers=bearer,
                            json={**EVENT, "externalId": "v2-1", "c_order_id": "42"})
    assert created.status_code == 201 and created.json()["success"] is True
    assert created.json()["data"]["order_id"] == "42"
    unprefixed = api.http.post("/v2/customerEvents", headers=bearer, json={**EVENT, "order_id": "42"})
    assert unprefixed.status_code == 400 and unprefixed.json()["error"]["fieldErrors"][0]["fieldName"] == "order_id"
    server.revoke_token()
    revoked = api.http.post("/v2/customerEvents", headers=bearer, json={**EVENT, "externalId": "v2-2"})
    assert revoked.status_code == 401 and revoked.json()["success"] is False


def test_current_partitions_monthly_and_the_current_month_by_default(api: Api, server: EmulatorServer) -> None:
    # the clock stands at 2024-01-01 (START)
    assert START == 1704067200.0
    for date in ("2024-01-05T00:00:00Z", "2023-12-31T00:00:00Z", "2018-06-01T00:00:00Z"):
        assert api.create(event="c_x", date=date, externalId=date).status_code == 201
    in_january = api.get("/v1/customerevents").json()
    assert [e["date"] for e in in_january] == ["2024-01-05T00:00:00Z"]
    assert [e["date"] for e in api.get("/v1/customerevents", partition="202312").json()] == ["2023-12-31T00:00:00Z"]
    assert len(api.get("/v1/customerevents", partition="2018").json()) == 1
    assert "partition" in field_errors(api.get("/v1/customerevents", partition="201812"))
    assert len(api.get("/v1/customerevents", partition="202401", idFrom=1, idTo=1).json()) == 1
    assert api.get("/v1/customerevents", partition="202401", idFrom=2).json() == []
