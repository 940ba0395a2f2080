"""Fixtures for the DM Hub emulator tests: a live emulator on 127.0.0.1 and an httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dmhub_adapter_tools.emulator.server import EmulatorServer

#: 2024-01-01T00:00:00Z, where each test's emulator clock starts
START = 1704067200.0


class Api:
    """A thin DM Hub caller: fetches a token once and adds it to every call."""

    def __init__(self, server: EmulatorServer, http: httpx.Client | None = None) -> None:
        self.server = server
        self.http = http or httpx.Client(base_url=server.base_url, timeout=10)
        self._token: str | None = None

    def fetch_token(self, appid: str = "demo-app", secret: str = "demo-secret", **extra: str) -> httpx.Response:
        params = {"grant_type": "client_credentials", "appid": appid, "secret": secret, **extra}
        return self.http.get("/security/accesstoken", params=params)

    @property
    def token(self) -> str:
        if self._token is None:
            body = self.fetch_token().json()
            assert body["error_code"] == 0, body
            self._token = body["access_token"]
        return self._token

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params={"access_token": self.token, **params})

    def post(self, path: str, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
        params = {"access_token": self.token}
        if content is not None:
            return self.http.post(path, params=params, content=content)
        return self.http.post(path, params=params, json=body)

    def create(self, **fields: Any) -> httpx.Response:
        event = {"customerId": 123456, "event": "c_apply_card", "date": "2024-03-01T08:00:00Z", **fields}
        return self.post("/v1/customerevents", event)

    def control(self, action: str, body: Any = None) -> httpx.Response:
        if body is None and action == "state":
            return self.http.get(f"/_emulator/{action}")
        return self.http.post(f"/_emulator/{action}", json=body if body is not None else {})


@pytest.fixture(scope="session")
def shared_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(port=0) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def shared_http(shared_server: EmulatorServer) -> Iterator[httpx.Client]:
    # one client for the session: building an httpx client costs tens of milliseconds
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with httpx.Client(base_url=shared_server.base_url, timeout=10, limits=limits) as client:
        yield client


@pytest.fixture
def server(shared_server: EmulatorServer) -> EmulatorServer:
    """The session's emulator, reset to its construction knobs with a frozen clock."""
    shared_server.reset()
    shared_server.set_clock(START)
    return shared_server


@pytest.fixture
def api(server: EmulatorServer, shared_http: httpx.Client) -> Api:
    return Api(server, shared_http)


def field_errors(response: httpx.Response) -> dict[str, str]:
    """fieldName -> message of a DM Hub validation error (asserting its exact shape)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == "400001"
    assert body["error"]["message"] == "field validation exception"
    return {e["fieldName"]: e["message"] for e in body["error"]["fieldErrors"]}
