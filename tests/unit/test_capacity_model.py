"""The capacity plan's arithmetic (bench/capacity.py): per-event figures, the token bucket,
the queue's growth and drain, retention, costs, and the template's settings it reads."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from bench import capacity
from bench.capacity import Route, Stack, TokenBucket


@pytest.fixture(scope="module")
def inputs() -> dict[str, Any]:
    return capacity.load_inputs()


@pytest.fixture(scope="module")
def base() -> Stack:
    return capacity.read_template()


def stack(**changes: Any) -> Stack:
    plain = Stack(
        name="test",
        routes={"wechat": Route(1000, 2000), "taobao": Route(1000, 2000), "generic": Route(50, 100)},
        ingest_memory_mb=1024, sender_memory_mb=512, sender_max_concurrency=5, batch_size=10,
        dmhub_cap=None, queue_retention_s=4 * 86400,
    )
    return replace(plain, **changes)


def test_the_template_defaults_are_read(base: Stack) -> None:
    assert base.ingest_memory_mb == 1024 and base.sender_memory_mb == 512
    assert base.routes["wechat"] == Route(100, 200)
    assert base.routes["taobao"] == Route(100, 200)
    assert base.routes["generic"] == Route(50, 100)
    assert base.sender_max_concurrency == 5 and base.batch_size == 50
    assert base.dmhub_cap is None  # DmHubMaxRequestsPerSecond defaults to no cap
    assert base.queue_retention_s == 345600


def test_every_quota_and_price_names_its_source(inputs: dict[str, Any]) -> None:
    for section in ("quotas", "prices"):
        for name, entry in inputs[section].items():
            assert entry["value"] > 0, name
            assert "https://" in entry["source"], name


def test_arrival_rate_follows_the_phases() -> None:
    phases = [[0, 50], [600, 2000], [2400, 200]]
    assert capacity.arrival_rate(phases, 0) == 50
    assert capacity.arrival_rate(phases, 599) == 50
    assert capacity.arrival_rate(phases, 600) == 2000
    assert capacity.arrival_rate(phases, 2399.9) == 2000
    assert capacity.arrival_rate(phases, 10**6) == 200


def test_token_bucket_lets_a_burst_through_then_the_rate() -> None:
    bucket = TokenBucket(rate=100, burst=200)
    assert bucket.take(500) == 300  # 200 banked + 100 refilled during the second
    assert bucket.take(500) == 100
    assert bucket.take(0) == 0
    assert bucket.take(500) == 200  # refilled to the burst, not beyond
    coarse = TokenBucket(rate=100, burst=200)
    assert coarse.take(1000 * 10, seconds=10) == 200 + 100 * 10  # one long step: bank plus refill


def test_per_event_figures(inputs: dict[str, Any]) -> None:
    measured, assumed = inputs["measured"], inputs["assumptions"]
    rpe = capacity.dmhub_requests_per_event(inputs)
    assert rpe == pytest.approx(measured["dmhub_requests_per_event_warm"]
                                + assumed["new_identity_share"] * measured["dmhub_requests_per_new_identity"])
    latency = assumed["aws_latency_ms"]
    share = min(1.0, 1024 * assumed["lambda_cpu_share"]["per_mb"])
    assert capacity.ingest_duration_ms(inputs, 1024) == pytest.approx(
        measured["ingest_cpu_ms"] / share + measured["ingest_dynamodb_writes"] * latency["dynamodb"]
        + measured["ingest_sqs_calls"] * latency["sqs"])
    assert capacity.cpu_share(4096, 1 / 1769) == 1.0  # one core at most


def test_the_cap_bounds_the_fleet_and_stretches_each_batch(inputs: dict[str, Any]) -> None:
    per_instance = inputs["measured"]["sender_events_per_second_per_instance"]
    free = stack()
    assert capacity.sender_rate(free, inputs) == 5 * per_instance
    assert capacity.sender_batch_seconds(free, inputs) == pytest.approx(10 / per_instance)
    capped = stack(dmhub_cap=100.0)
    rpe = capacity.dmhub_requests_per_event(inputs)
    assert capacity.sender_rate(capped, inputs) == pytest.approx(100 / rpe)
    # 5 instances share 100/s: 20 requests/s each, so a batch of 10 events takes 10 * rpe / 20 s
    assert capacity.sender_batch_seconds(capped, inputs) == pytest.approx(10 * rpe / 20)


def test_backlog_grows_by_the_difference_and_drains_at_the_fleets_rate(inputs: dict[str, Any]) -> None:
    rate = capacity.sender_rate(stack(dmhub_cap=100.0), inputs)
    scenario = {"title": "t", "phases": [[0, 500], [600, 0]], "horizon_hours": 3}
    run = capacity.simulate(scenario, stack(dmhub_cap=100.0), inputs)
    assert max(run.backlog) == pytest.approx(600 * (500 - rate), rel=1e-6)
    assert run.drained_at == pytest.approx(600 + 600 * (500 - rate) / rate, abs=2)
    assert run.total(run.delivered) == pytest.approx(600 * 500, rel=1e-6)  # nothing lost
    assert run.oldest_age[599] == pytest.approx(599 - 600 * rate / 500, abs=2)  # FIFO: served in order


def test_a_coarser_step_gives_the_same_backlog(inputs: dict[str, Any]) -> None:
    scenario = {"title": "t", "phases": [[0, 300], [1200, 20]], "horizon_hours": 2}
    fine = capacity.simulate(scenario, stack(dmhub_cap=100.0), inputs)
    coarse = capacity.simulate({**scenario, "step_seconds": 10}, stack(dmhub_cap=100.0), inputs)
    assert max(coarse.backlog) == pytest.approx(max(fine.backlog), rel=0.01)
    assert coarse.drained_at == pytest.approx(fine.drained_at, abs=20)


def test_messages_older_than_the_retention_are_lost(inputs: dict[str, Any]) -> None:
    short = stack(dmhub_cap=100.0, queue_retention_s=600)
    rate = capacity.sender_rate(short, inputs)
    run = capacity.simulate({"title": "t", "phases": [[0, 200]], "horizon_hours": 1}, short, inputs)
    assert max(run.oldest_age) <= 600
    assert run.expired > 0
    arrived, delivered = run.total(run.ingested), run.total(run.delivered)
    assert arrived == pytest.approx(delivered + run.expired + run.backlog[-1], rel=1e-6)  # nothing vanishes
    assert delivered == pytest.approx(3600 * rate, rel=1e-3)


def test_api_gateway_refuses_what_the_route_throttles_do_not_let_through(inputs: dict[str, Any]) -> None:
    narrow = stack(routes={"wechat": Route(100, 200), "taobao": Route(100, 200), "generic": Route(50, 100)})
    run = capacity.simulate({"title": "t", "phases": [[0, 1000]], "horizon_hours": 0.5}, narrow, inputs)
    # half the traffic per route (the input mix), 100/s each after the first second's burst
    assert run.total(run.ingested) == pytest.approx(2 * (200 + 100 * 1800), rel=1e-6)
    assert run.total(run.api_refused) == pytest.approx(1000 * 1800 - run.total(run.ingested), rel=1e-6)


def test_lambda_concurrency_caps_the_ingest(inputs: dict[str, Any]) -> None:
    few = copy.deepcopy(inputs)
    few["quotas"]["lambda_account_concurrency"]["value"] = 15  # 10 left for ingest beside 5 senders
    duration = capacity.ingest_duration_ms(few, 1024) / 1000
    run = capacity.simulate({"title": "t", "phases": [[0, 1500]], "horizon_hours": 0.1}, stack(), few)
    assert max(run.ingest_concurrency) == pytest.approx(10)
    assert run.ingested[-1] == pytest.approx(10 / duration)
    assert run.lambda_refused[-1] == pytest.approx(1500 - 10 / duration)


def test_dynamodb_throttles_beyond_a_new_tables_throughput_and_then_doubles(inputs: dict[str, Any]) -> None:
    writes = inputs["measured"]["ingest_dynamodb_writes"]
    wide = stack(routes={name: Route(10_000, 20_000) for name in ("wechat", "taobao", "generic")})
    rate = 2500.0  # 5,000+ WRU/s of ingest writes alone: over 4,000 until the table has doubled a peak
    run = capacity.simulate({"title": "t", "phases": [[0, rate]], "horizon_hours": 1}, wide, inputs)
    assert run.dynamodb_over[10] == pytest.approx(run.dynamodb_wru[10] - 4000)
    assert run.dynamodb_wru[10] >= rate * writes
    assert run.dynamodb_over[1800 + 10] == 0  # 30 minutes on, twice the 4,000 served is allowed


def test_the_default_stack_absorbs_what_its_route_throttles_allow(inputs: dict[str, Any], base: Stack) -> None:
    absorbed = capacity.absorbed_without_throttling(base, inputs)
    # 50 % WeChat, 50 % Taobao, 100/s each: 200/s (a little more while the bursts last)
    assert 199 <= absorbed <= 205
    assert capacity.binding_limit(base, inputs) == "API Gateway route throttle"


def test_costs_add_up_per_service(inputs: dict[str, Any], base: Stack) -> None:
    run = capacity.simulate({"title": "t", "phases": [[0, 50]], "horizon_hours": 1}, base, inputs)
    costs = capacity.costs_per_million(run, inputs)
    prices = {name: capacity.value(entry) for name, entry in inputs["prices"].items()}
    assert costs["API Gateway (HTTP API)"] == pytest.approx(prices["api_gateway_http_per_million"])
    assert costs["DynamoDB"] == pytest.approx(
        capacity.dynamodb_writes_per_webhook(inputs) * prices["dynamodb_per_million_wru"]
        + capacity.dynamodb_reads_per_webhook(inputs) * prices["dynamodb_per_million_rru"])
    assert costs["Lambda requests"] == pytest.approx(prices["lambda_per_million_requests"] * (1 + 1 / base.batch_size))
    ingest_ms = -(-capacity.ingest_duration_ms(inputs, 1024) // 1)  # billed per whole millisecond
    at_least = 1e6 * (ingest_ms / 1000 * 1.0 + capacity.sender_batch_seconds(base, inputs) / base.batch_size * 0.5) \
        * prices["lambda_gb_second_x86"]
    assert costs["Lambda GB-s (incl. INIT)"] > at_least  # plus the INIT phases
    assert costs["of which INIT (GB-s)"] > 0
    assert capacity.total_cost(costs) == pytest.approx(
        sum(v for k, v in costs.items() if k != "of which INIT (GB-s)"))


def test_new_environments_count_rises_and_recycling() -> None:
    assert capacity.new_environments([0, 5, 5, 3, 8], lifetime_hours=1e9) == pytest.approx(10)  # 5 + 5 rises
    assert capacity.new_environments([2.0] * 3600, lifetime_hours=1) == pytest.approx(2 + 2)
