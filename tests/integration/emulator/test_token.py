"""The token API and DM Hub's security layer (errors in HTTP 200 bodies)."""

from __future__ import annotations

import pytest

from dmhub_adapter_tools.emulator.server import EmulatorServer
from tests.integration.emulator.conftest import Api


def test_token_is_issued_in_dmhub_shape(api: Api, server: EmulatorServer) -> None:
    response = api.fetch_token()
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"error_code", "access_token", "expires_in"}
    assert body["error_code"] == 0
    assert body["expires_in"] == 7200
    assert len(body["access_token"]) >= 16
    assert server.state.current_token("demo-app") == body["access_token"]
    assert server.state.counters()["token_fetches"] == 1


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"appid": "nobody"}, 40013),
        ({"appid": ""}, 40013),
        ({"secret": "wrong"}, 40125),
        ({"secret": ""}, 40125),
        ({"grant_type": "password"}, 40002),
    ],
)
def test_wrong_credentials_answer_200_with_an_error_code(
    api: Api, server: EmulatorServer, params: dict[str, str], code: int
) -> None:
    response = api.fetch_token(**params)
    assert response.status_code == 200
    body = response.json()
    assert body["error_code"] == code
    assert body["error_description"]
    assert "access_token" not in body
    counters = server.state.counters()
    assert counters["token_fetches"] == 0
    assert counters["token_rejections"] == 1


def test_each_fetch_replaces_the_previous_token(api: Api, server: EmulatorServer) -> None:
    first = api.fetch_token().json()["access_token"]
    second = api.fetch_token().json()["access_token"]
    assert first != second
    old = api.http.get("/v1/customerevents", params={"access_token": first})
    assert old.status_code == 200
    assert old.json() == {
        "error_code": 40001,
        "error_description": "invalid access_token, or access_token is not the latest",
    }
    new = api.http.get("/v1/customerevents", params={"access_token": second})
    assert new.status_code == 200
    assert new.json() == []
    assert server.state.counters()["token_fetches"] == 2
    assert server.state.counters()["token_errors"] == 1


def test_tokens_are_per_app(api: Api, server: EmulatorServer) -> None:
    server.configure(apps={"demo-app": "demo-secret", "other-app": "other-secret"})
    mine = api.fetch_token().json()["access_token"]
    theirs = api.fetch_token("other-app", "other-secret").json()["access_token"]
    # another app's fetch does not kill this app's token
    for token in (mine, theirs):
        assert api.http.get("/v1/customerevents", params={"access_token": token}).json() == []


@pytest.mark.parametrize("params", [{}, {"access_token": ""}, {"access_token": "not-a-token"}])
def test_missing_or_unknown_token_is_refused_on_every_endpoint(api: Api, params: dict[str, str]) -> None:
    code = 41001 if not params.get("access_token") else 40001
    calls = [
        api.http.get("/v1/customerevents", params=params),
        api.http.get("/v1/customerevents/1", params=params),
        api.http.post("/v1/customerevents", params=params, json={"customerId": 1}),
        api.http.get("/v1/customeridentities", params={**params, "identityType": "wechat", "identityValue": "o1"}),
        api.http.post("/v1/customerandidentities", params=params, json={"customer": {}}),
        api.http.get("/v1/no-such-thing", params=params),
    ]
    for response in calls:
        assert response.status_code == 200, response.request.url
        assert response.json()["error_code"] == code


def test_token_expires_after_its_lifetime(api: Api, server: EmulatorServer) -> None:
    token = api.token
    server.advance_clock(7199)
    assert api.get("/v1/customerevents").json() == []
    server.advance_clock(1)
    expired = api.http.get("/v1/customerevents", params={"access_token": token})
    assert expired.status_code == 200
    assert expired.json()["error_code"] == 42001


def test_token_ttl_knob_changes_expires_in(api: Api, server: EmulatorServer) -> None:
    server.configure(token_ttl=60)
    assert api.fetch_token().json()["expires_in"] == 60


def test_revocation_through_the_control_api(api: Api, server: EmulatorServer) -> None:
    token = api.token
    assert api.control("revoke-token").json() == {"revoked": ["demo-app"]}
    revoked = api.http.get("/v1/customerevents", params={"access_token": token}).json()
    assert revoked["error_code"] == 40001
    fresh = api.fetch_token().json()["access_token"]
    assert api.http.get("/v1/customerevents", params={"access_token": fresh}).json() == []
    assert api.control("revoke-token", {"appId": "demo-app", "expired": True}).json() == {"revoked": ["demo-app"]}
    assert api.http.get("/v1/customerevents", params={"access_token": fresh}).json()["error_code"] == 42001
    # nothing live any more: nothing to revoke
    assert api.control("revoke-token").json() == {"revoked": []}


def test_revocation_from_python(api: Api, server: EmulatorServer) -> None:
    token = api.token
    assert server.revoke_token() == ["demo-app"]
    assert server.state.current_token() is None
    assert api.http.get("/v1/customerevents", params={"access_token": token}).json()["error_code"] == 40001


def test_token_endpoint_needs_no_token_and_only_get(api: Api) -> None:
    response = api.http.post(
        "/security/accesstoken",
        params={"grant_type": "client_credentials", "appid": "demo-app", "secret": "demo-secret"},
    )
    assert response.status_code == 405
