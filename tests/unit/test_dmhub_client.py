"""DmhubClient against httpx.MockTransport: wire format, error classification, token handling."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dmhub_adapter.dmhub.client import (
    DmhubClient,
    StaticToken,
    classify,
    redact,
)
from dmhub_adapter.dmhub.errors import (
    CredentialsError,
    DmhubBodyError,
    DmhubValidationError,
    HttpError,
    RateLimited,
    TokenError,
    TransportError,
    UnexpectedResponse,
)
from dmhub_adapter.model.customer_event import CustomerEvent

BASE = "https://dmhub.test"

STORED = {
    "id": 42,
    "customerId": 7,
    "event": "c_apply_card",
    "targetId": None,
    "date": "2024-05-01T10:00:00Z",
    "externalId": "ext-1",
    "lastUpdated": "2024-05-01T10:00:01Z",
    "touter": "t1",
}


def client_for(handler: Callable[[httpx.Request], httpx.Response], token: Any = None) -> DmhubClient:
    return DmhubClient(BASE, token_source=token or StaticToken("tok-1"), transport=httpx.MockTransport(handler))


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    if isinstance(body, (dict, list)):
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, content=(body or "").encode(), headers=headers)


class Renewing:
    """A token source that hands out tok-1, then tok-2 after renew()."""

    def __init__(self) -> None:
        self.current = "tok-1"
        self.renewed: list[str] = []

    def get(self, *, deadline: float | None = None) -> str:
        return self.current

    def renew(self, rejected: str, *, deadline: float | None = None) -> str:
        self.renewed.append(rejected)
        self.current = "tok-2"
        return self.current

    def reconsider(self, rejected: str, *, deadline: float | None = None) -> str | None:
        """Like the shared token: refresh once; the refreshed token is too young to refresh again."""
        if rejected == "tok-2":
            return None
        return self.renew(rejected)


# -- classification --------------------------------------------------------------------------


@pytest.mark.parametrize("code", [40201, "40201", "C0002"])
def test_http_200_with_error_code_is_a_body_error_not_a_token_error(code: object) -> None:
    with pytest.raises(DmhubBodyError) as info:
        classify(answer(200, {"error_code": code, "error_description": "permission is not enough"}), "x")
    assert not info.value.retryable
    assert info.value.error_code == code
    assert info.value.kind == f"dmhub_error_{code}"
    assert info.value.describe() == f"dmhub_error_{code}: permission is not enough"


@pytest.mark.parametrize("code", [0, "0", None])
def test_error_code_zero_or_absent_is_success(code: object) -> None:
    assert classify(answer(200, {"error_code": code, "id": 1}), "x")["id"] == 1


def test_v2_answers_401_and_errors_naming_the_token_are_token_errors() -> None:
    with pytest.raises(TokenError):
        classify(answer(401, {"success": False, "error": {"code": "invalid_token"}}), "x", "v2")
    with pytest.raises(TokenError):
        classify(answer(403, {"success": False, "error": {"code": "x", "message": "access token expired"}}), "x", "v2")
    with pytest.raises(DmhubValidationError) as info:
        classify(answer(400, {"success": False, "error": {"code": "400001", "message": "bad",
                                                          "fieldErrors": [{"fieldName": "event"}]}}), "x", "v2")
    assert info.value.field_errors == [{"fieldName": "event"}] and not info.value.retryable
    with pytest.raises(HttpError) as failed:
        classify(answer(503, "busy"), "x", "v2")
    assert failed.value.retryable
    # v1 has no 401 convention: a plain permanent HTTP error
    with pytest.raises(HttpError) as plain:
        classify(answer(401, "no"), "x")
    assert not plain.value.retryable


def test_success_false_is_a_permanent_refusal() -> None:
    with pytest.raises(DmhubValidationError):
        classify(answer(200, {"success": False, "message": "bad batch"}), "x")


def test_http_200_with_error_object_is_a_permanent_validation_error_with_field_errors() -> None:
    body = {
        "error": {
            "code": "400001",
            "message": "field validation exception",
            "fieldErrors": [{"fieldName": "event", "message": "unknown event type"}],
        }
    }
    with pytest.raises(DmhubValidationError) as info:
        classify(answer(200, body), "create event")
    error = info.value
    assert not error.retryable
    assert error.code == "400001"
    assert error.field_errors == [{"fieldName": "event", "message": "unknown event type"}]
    assert "event: unknown event type" in error.describe()


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (502, True), (408, True), (400, False), (404, False)]
)
def test_plain_http_errors_are_retryable_only_for_5xx_and_408(status: int, retryable: bool) -> None:
    with pytest.raises(HttpError) as info:
        classify(answer(status, "No customer field found"), "x")
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert "No customer field found" in info.value.message


def test_429_carries_retry_after_seconds() -> None:
    with pytest.raises(RateLimited) as info:
        classify(answer(429, "slow down", **{"Retry-After": "3"}), "x")
    assert info.value.retryable and info.value.retry_after == 3.0


def test_429_retry_after_as_http_date() -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    with pytest.raises(RateLimited) as info:
        classify(answer(429, "", **{"Retry-After": when}), "x")
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 31


def test_a_2xx_that_is_not_json_is_unexpected_and_retryable() -> None:
    with pytest.raises(UnexpectedResponse) as info:
        classify(answer(200, "<html>gateway</html>"), "x")
    assert info.value.retryable


def test_error_code_zero_is_success() -> None:
    assert classify(answer(200, {"error_code": 0, "access_token": "a"}), "x")["access_token"] == "a"


# -- calls -----------------------------------------------------------------------------------


def test_create_event_posts_the_body_with_token_as_query_parameter() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(201, STORED)

    event = CustomerEvent.model_validate(
        {
            "customerId": 7,
            "event": "c_apply_card",
            "date": "2024-05-01T10:00:00Z",
            "externalId": "ext-1",
            "touter": "t1",
        }
    )
    stored = client_for(handler).create_event(event)
    assert stored.id == 42 and stored.custom_attributes == {"touter": "t1"}
    (request,) = seen
    assert request.method == "POST" and request.url.path == "/v1/customerevents"
    assert request.url.params["access_token"] == "tok-1"
    body = json.loads(request.content)
    assert body == {"customerId": 7, "event": "c_apply_card", "date": "2024-05-01T10:00:00Z",
                    "externalId": "ext-1", "touter": "t1"}
    assert "id" not in body and "lastUpdated" not in body
    assert "authorization" not in request.headers


def test_token_error_renews_once_and_repeats_the_call() -> None:
    tokens: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.url.params["access_token"])
        if request.url.params["access_token"] == "tok-1":
            return answer(200, {"error_code": 40001, "error_description": "not the latest"})
        return answer(201, STORED)

    source = Renewing()
    stored = client_for(handler, source).create_event(
        {"customerId": 7, "event": "c_apply_card", "date": "2024-05-01T10:00:00Z", "externalId": "ext-1"}
    )
    assert stored.id == 42
    assert tokens == ["tok-1", "tok-2"]
    assert source.renewed == ["tok-1"]


def test_a_second_token_error_after_renewal_is_raised() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return answer(200, {"error_code": 40001})

    source = Renewing()
    with pytest.raises(DmhubBodyError):
        client_for(handler, source).lookup_identity("wechat", "o1")
    assert calls == 2 and source.renewed == ["tok-1"]


def test_get_event_passes_partition_and_maps_500_to_http_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path in ("/v1/customerevents/42", "/v1/customerevents/43")
        if request.url.path.endswith("/43"):
            return answer(500, {"status": 500, "message": "CustomerEvent 43 not found"})
        assert request.url.params["partition"] == "2017"
        return answer(200, STORED)

    client = client_for(handler)
    assert client.get_event(42, partition="2017").id == 42
    with pytest.raises(HttpError) as info:
        client.get_event(43)
    assert info.value.status == 500


def test_query_events_sends_every_parameter() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.url.params)
        return answer(200, [STORED, {**STORED, "id": 43}])

    events = client_for(handler).query_events(
        customer_id=7,
        event=["c_a", "c_b"],
        last_updated_from="2024-01-01T00:00:00Z",
        last_updated_to="2024-12-31T00:00:00Z",
        partition="2018",
        max=1000,
        rows=50,
        page=2,
        sidx="lastUpdated",
        sord="desc",
    )
    assert [e.id for e in events] == [42, 43]
    assert seen == {
        "access_token": "tok-1",
        "customerId": "7",
        "event": "c_a,c_b",
        "lastUpdatedFrom": "2024-01-01T00:00:00Z",
        "lastUpdatedTo": "2024-12-31T00:00:00Z",
        "partition": "2018",
        "max": "1000",
        "rows": "50",
        "page": "2",
        "sidx": "lastUpdated",
        "sord": "desc",
    }


@pytest.mark.parametrize("kwargs", [{"max": 1001}, {"max": 0}, {"page": 0}, {"sord": "up"}, {"rows": 0}])
def test_query_events_validates_limits_before_calling(kwargs: dict[str, Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(ValueError):
        client_for(handler).query_events(**kwargs)


def test_identity_lookup_and_upsert() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/customeridentities":
            if request.url.params["identityValue"] == "known":
                return answer(200, [{"customerId": 9, "identityType": "wechat", "identityValue": "known"}])
            return answer(200, [])
        assert request.url.path == "/v1/customerandidentities"
        body = json.loads(request.content)
        assert body == {
            "customer": {"name": "Ann"},
            "customerIdentities": [{"identityType": "wechat", "identityValue": "new", "identityName": "Ann"}],
        }
        return answer(201, {"id": 11, "name": "Ann"})

    client = client_for(handler)
    assert [r.customer_id for r in client.lookup_identity("wechat", "known")] == [9]
    assert client.lookup_identity("wechat", "unknown") == []
    customer = client.upsert_customer(
        {"name": "Ann"}, [{"identityType": "wechat", "identityValue": "new", "identityName": "Ann"}]
    )
    assert customer["id"] == 11


def test_fetch_token_and_refused_credentials() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/security/accesstoken"
        assert request.url.params["grant_type"] == "client_credentials"
        if request.url.params["secret"] == "right":
            return answer(200, {"error_code": 0, "access_token": "T", "expires_in": 7200})
        return answer(200, {"error_code": 40125, "error_description": "invalid secret"})

    client = client_for(handler)
    grant = client.fetch_token("app", "right")
    assert grant.access_token == "T" and grant.expires_in == 7200
    assert abs(grant.expires_at - (time.time() + 7200)) < 5
    with pytest.raises(CredentialsError) as info:
        client.fetch_token("app", "wrong")
    assert "wrong" not in str(info.value)


def test_transport_failures_and_timeouts_are_retryable_transport_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(TransportError) as info:
        client_for(refuse).lookup_identity("wechat", "o1")
    assert info.value.retryable
    assert "tok-1" not in str(info.value)
    with pytest.raises(TransportError, match="timed out"):
        client_for(slow).lookup_identity("wechat", "o1")


def test_deadline_clamps_timeouts_and_refuses_calls_after_it() -> None:
    timeouts: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return answer(200, [])

    client = client_for(handler)
    client.lookup_identity("wechat", "o1", deadline=time.monotonic() + 1.0)
    assert timeouts[0]["read"] <= 1.0
    with pytest.raises(TransportError):
        client.lookup_identity("wechat", "o1", deadline=time.monotonic() - 1)
    assert len(timeouts) == 1


def test_request_log_never_shows_the_token(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer(200, [])

    with caplog.at_level(logging.DEBUG):
        client_for(handler, StaticToken("very-secret-token")).lookup_identity("wechat", "o1")
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "customeridentities" in text  # httpx did log the request …
    assert "very-secret-token" not in text  # … without the token
    assert redact("/x?access_token=abc&b=1&secret=s") == "/x?access_token=***&b=1&secret=***"


def test_requests_are_built_as_httpx_builds_them() -> None:
    """The client builds its requests itself (reusing parsed URLs); each must match what
    httpx's own ``build_request`` makes of the same call, token rotations included."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/customerevents"):
            return answer(201, STORED)
        return answer(200, [])

    token = Renewing()
    client = DmhubClient(BASE + "/prefix", token_source=token, transport=httpx.MockTransport(handler))
    reference = httpx.Client(base_url=BASE + "/prefix",
                             headers={"Accept": "application/json", "User-Agent": "dmhub-adapter"})
    event = CustomerEvent(customerId=7, event="c_apply_card", date="2024-05-01T10:00:00Z", externalId="ext-1")
    client.create_event(event)
    client.create_event(event)
    token.renew("tok-1")
    client.create_event(event)
    client.lookup_identity("wechat", "o&x 微信=1")
    expected = [
        reference.build_request("POST", "/v1/customerevents", params={"access_token": "tok-1"},
                                json=event.to_request()),
        reference.build_request("POST", "/v1/customerevents", params={"access_token": "tok-1"},
                                json=event.to_request()),
        reference.build_request("POST", "/v1/customerevents", params={"access_token": "tok-2"},
                                json=event.to_request()),
    ]
    assert [r.url for r in seen[:3]] == [r.url for r in expected]
    assert str(seen[2].url) == f"{BASE}/prefix/v1/customerevents?access_token=tok-2"
    # the client's timeouts when no deadline bounds the call, as the reference client sets them
    reference.timeout = client.timeouts.httpx()
    timed = reference.build_request("POST", "/v1/customerevents", params={"access_token": "tok-1"},
                                    json=event.to_request())
    assert seen[0].extensions["timeout"] == timed.extensions["timeout"]
    assert all(r.extensions["timeout"]["read"] == client.timeouts.read for r in seen)
    for got, want in zip(seen, expected, strict=False):
        assert got.method == want.method
        assert list(got.headers.multi_items()) == list(want.headers.multi_items())
        assert got.content == want.content
    lookup = seen[3]
    assert lookup.url.path == "/prefix/v1/customeridentities"
    assert lookup.url.params["identityValue"] == "o&x 微信=1"
    assert lookup.url.params["access_token"] == "tok-2"


def test_v2_requests_carry_the_token_as_bearer_header_over_the_client_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(201, {"data": {"id": 9}})

    client = DmhubClient(BASE, api="v2", token_source=StaticToken("tok-v2"), transport=httpx.MockTransport(handler))
    event = CustomerEvent(customerId=7, event="c_apply_card", date="2024-05-01T10:00:00Z", externalId="ext-1")
    client.create_event_v2(event, None)
    (request,) = seen
    assert request.headers["authorization"] == "Bearer tok-v2"
    assert request.headers["accept"] == "application/json"
    assert "access_token" not in request.url.params
    assert "authorization" not in client._http.headers  # the client's own headers stay as they were
