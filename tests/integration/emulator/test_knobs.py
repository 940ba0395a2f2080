"""The knobs: latency, 5xx and 429 rates (seeded), fail-next, the control API and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from dmhub_adapter_tools.emulator.server import EmulatorServer
from tests.integration.emulator.conftest import Api

CLI = [sys.executable, "-c", "import sys; from dmhub_adapter_tools.cli import main; sys.exit(main())"]


def test_latency_delays_api_calls_but_not_control_calls(api: Api, server: EmulatorServer) -> None:
    token = api.token
    server.configure(latency=0.3)
    started = time.monotonic()
    assert api.http.get("/v1/customerevents", params={"access_token": token}).json() == []
    assert time.monotonic() - started >= 0.3
    assert api.control("state").json()["config"]["latency"] == 0.3


def test_requests_are_served_concurrently(api: Api, server: EmulatorServer) -> None:
    token = api.token
    server.configure(latency=0.4)
    barrier = threading.Barrier(8)

    def call(_: int) -> int:
        barrier.wait()
        return api.http.get("/v1/customerevents", params={"access_token": token}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(call, range(8))) == [200] * 8
    counters = server.state.counters()
    assert counters["max_in_flight"] > 1
    assert counters["requests"]["events.query"] == 8


def _statuses(api: Api, count: int) -> list[int]:
    return [api.create(externalId=f"e{i}").status_code for i in range(count)]


def test_error_rate_is_seeded_and_counted(api: Api, server: EmulatorServer) -> None:
    token = api.token
    server.configure(error_rate=0.3, seed=7)
    first = _statuses(api, 100)
    server.configure(seed=7)
    second = _statuses(api, 100)
    assert first == second
    failures = first.count(503)
    assert 10 < failures < 60
    assert set(first) == {201, 503}
    counters = server.state.counters()
    assert counters["faults"]["5xx"] == 2 * failures
    assert counters["responses"]["503"] == 2 * failures
    # the failed calls never reached the store
    assert counters["events_created"] == 100 - failures
    assert token == server.state.current_token()


def test_error_status_and_certain_failure(api: Api, server: EmulatorServer) -> None:
    assert api.token
    server.configure(error_rate=1.0, error_status=502)
    response = api.create()
    assert response.status_code == 502
    assert server.state.events() == []
    server.configure(error_rate=0.0)
    assert api.create().status_code == 201


def test_throttle_rate_answers_429_with_retry_after(api: Api, server: EmulatorServer) -> None:
    assert api.token
    server.configure(throttle_rate=1.0, retry_after=3)
    response = api.create()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    server.configure(throttle_rate=0.5, seed=1)
    statuses = _statuses(api, 60)
    assert set(statuses) == {201, 429}
    assert server.state.counters()["faults"]["429"] == 1 + statuses.count(429)


def test_fault_endpoints_limit_random_faults(api: Api, server: EmulatorServer) -> None:
    server.configure(error_rate=1.0, fault_endpoints=["events.create"])
    assert api.fetch_token().json()["error_code"] == 0
    assert api.get("/v1/customerevents").status_code == 200
    assert api.create().status_code == 503


def test_fail_next_before_processing(api: Api, server: EmulatorServer) -> None:
    assert api.token
    server.fail_next(2, 500, endpoint="events.create")
    assert api.get("/v1/customerevents").status_code == 200  # other endpoints unaffected
    assert [api.create().status_code for _ in range(3)] == [500, 500, 201]
    assert len(server.state.events()) == 1
    assert server.state.counters()["faults"]["injected"] == 2


def test_fail_next_after_processing_loses_only_the_answer(api: Api, server: EmulatorServer) -> None:
    assert api.token
    server.fail_next(1, 504, endpoint="events.create", after=True)
    assert api.create(externalId="ext-9").status_code == 504
    assert len(server.state.events()) == 1
    # the retry with the same externalId is deduplicated by DM Hub
    retry = api.create(externalId="ext-9")
    assert retry.status_code == 201
    assert retry.json()["id"] == server.state.events()[0]["id"]
    assert len(server.state.events()) == 1


def test_fail_next_with_a_custom_body_through_the_control_api(api: Api) -> None:
    assert api.token
    body = {"error_code": 40001, "error_description": "invalid access_token"}
    assert api.control("fail-next", {"count": 1, "status": 200, "body": body}).json() == {"pending": 1}
    response = api.create()
    assert response.status_code == 200
    assert response.json() == body
    assert api.control("fail-next", {"status": 429, "retryAfter": 9}).status_code == 200
    throttled = api.get("/v1/customerevents")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "9")
    assert api.control("fail-next", {"status": 42}).status_code == 400
    assert api.control("fail-next", {"endpoint": "nope"}).status_code == 400


def test_config_through_the_control_api(api: Api, server: EmulatorServer) -> None:
    response = api.control("config", {"throttle_rate": 0.25, "event_types": ["c_a"]})
    assert response.status_code == 200
    assert response.json()["throttle_rate"] == 0.25
    assert server.config.throttle_rate == 0.25
    assert server.config.event_types == {"c_a": None}
    assert api.control("config", {"error_rate": 2}).status_code == 400
    assert api.control("config", {"error_rate": 0.8, "throttle_rate": 0.5}).status_code == 400
    assert api.control("config", {"no_such_knob": 1}).status_code == 400
    assert api.control("config", {"fault_endpoints": ["nope"]}).status_code == 400
    assert api.http.get("/_emulator/config").json()["throttle_rate"] == 0.25


def test_state_and_reset_through_the_control_api(api: Api, server: EmulatorServer) -> None:
    api.create(externalId="x")
    server.configure(latency=0.01)
    state = api.control("state").json()
    assert [e["externalId"] for e in state["events"]] == ["x"]
    assert state["counters"]["token_fetches"] == 1
    assert state["counters"]["requests"]["events.create"] == 1
    assert state["live_tokens"] == {"demo-app": api.token}
    assert api.control("reset").json() == {"reset": True}
    state = api.control("state").json()
    assert state["events"] == []
    assert state["live_tokens"] == {}
    assert state["counters"]["token_fetches"] == 0
    assert state["config"]["latency"] == 0.0
    # the token died with the reset
    assert api.get("/v1/customerevents").json()["error_code"] == 40001


def test_clock_through_the_control_api(api: Api) -> None:
    token = api.token
    assert api.control("clock", {"advance": 7200}).json() == {"now": "2024-01-01T02:00:00Z"}
    assert api.http.get("/v1/customerevents", params={"access_token": token}).json()["error_code"] == 42001
    assert api.control("clock", {"set": "2030-01-01T00:00:00Z"}).json() == {"now": "2030-01-01T00:00:00Z"}
    assert api.control("clock", {"set": "soon"}).status_code == 400
    assert api.control("clock", {}).status_code == 400
    assert api.control("clock", {"real": True}).status_code == 200
    assert api.control("nope").status_code == 404


def test_unknown_route_with_a_valid_token_is_404(api: Api) -> None:
    assert api.get("/v1/nothing").status_code == 404
    assert api.http.delete("/v1/customerevents", params={"access_token": api.token}).status_code == 405


def test_oversized_body_is_413(api: Api) -> None:
    assert api.post("/v1/customerevents", content=b"x" * (1024 * 1024 + 1)).status_code == 413


def test_cli_prints_the_url_serves_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--app-id", "cli-app", "--secret", "cli-secret", "--latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        token = httpx.get(
            f"{url}/security/accesstoken",
            params={"grant_type": "client_credentials", "appid": "cli-app", "secret": "cli-secret"},
        ).json()
        assert token["error_code"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_rejects_bad_knobs() -> None:
    result = subprocess.run(
        [*CLI, "emulator", "--port", "0", "--error-rate", "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "error_rate" in result.stderr


@pytest.mark.parametrize("knobs", [{"latency": -1}, {"error_status": 404}, {"token_ttl": 0}])
def test_constructor_validates_knobs(knobs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EmulatorServer(**knobs)


def test_count_per_second_records_arrivals_and_the_busiest_window(api: Api, server: EmulatorServer) -> None:
    token = api.token
    assert api.control("state").json()["rate"] is None  # off by default: nothing is recorded
    server.configure(count_per_second=True)
    for _ in range(6):
        assert api.http.get("/v1/customerevents", params={"access_token": token}).status_code == 200
    rate = api.control("state").json()["rate"]
    assert rate["requests"] == 6  # control calls are not counted
    assert 1 <= rate["max_in_any_1s_window"] <= 6
    assert sum(rate["per_second"].values()) == 6
    server.reset(config=False)
    assert api.control("state").json()["rate"]["requests"] == 0
