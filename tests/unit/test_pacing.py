"""The sender's DM Hub pacer: spacing, thread safety, waits bounded by the call's time,
429 holds, and the settings that turn it on."""

from __future__ import annotations

import itertools
import math
import threading
import time
from typing import Any

import httpx
import pytest

from dmhub_adapter.dmhub.client import DmhubClient, StaticToken
from dmhub_adapter.dmhub.errors import RateLimited, TransportError
from dmhub_adapter.sender.pacing import (
    DEFAULT_HOLD_SECONDS,
    HEADROOM,
    PacedTransport,
    Pacer,
    PacerTimeout,
    pace_shortfall,
    paced_transport,
    per_instance_rate,
    starts_within,
)
from dmhub_adapter.settings import SenderSettings, SettingsError


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def max_in_window(starts: list[float], window: float = 1.0 - 1e-9) -> int:
    """Most starts in any half-open window ``[t, t + window)`` (a hair short of a second, for
    the float error of summed intervals)."""
    ordered, best, low = sorted(starts), 0, 0
    for high, start in enumerate(ordered):
        while ordered[low] <= start - window:
            low += 1
        best = max(best, high - low + 1)
    return best


def test_starts_are_spaced_one_interval_apart_and_the_first_is_free() -> None:
    fake = FakeTime()
    pacer = Pacer(20, clock=fake.clock, sleep=fake.sleep)
    starts = []
    waits = []
    for _ in range(60):
        waits.append(pacer.acquire())
        starts.append(fake.clock())
    assert waits[0] == 0
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap == pytest.approx(0.05) for gap in gaps)
    assert max_in_window(starts) == 20


@pytest.mark.parametrize("rate", [0.5, 3, 7.5, 33.3])
def test_no_one_second_window_holds_more_than_the_rate_rounded_up(rate: float) -> None:
    fake = FakeTime()
    pacer = Pacer(rate, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for n in range(200):
        if n % 17 == 0:
            fake.sleep(0.37)  # idle gaps must not let a burst through afterwards
        pacer.acquire()
        starts.append(fake.clock())
    assert max_in_window(starts) <= math.ceil(rate)


def test_an_idle_pacer_does_not_bank_slots() -> None:
    fake = FakeTime()
    pacer = Pacer(10, clock=fake.clock, sleep=fake.sleep)
    pacer.acquire()
    fake.sleep(60)
    assert pacer.acquire() == 0
    assert pacer.acquire() == pytest.approx(0.1)  # the second one after the pause waits again


def test_threads_get_distinct_slots() -> None:
    """Real threads racing for slots: every reserved start is one interval after the previous."""
    pacer = Pacer(1000.0, sleep=lambda seconds: None)
    starts: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            before = time.monotonic()
            waited = pacer.acquire()
            with lock:
                starts.append(before + waited)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(starts)
    assert len(ordered) == 400
    # a slot is reserved after ``before`` was read, so the recorded start can only be early by
    # the time between the two reads; the spacing of reserved slots is what must hold
    assert ordered[-1] - ordered[0] >= 399 * 0.001 - 0.05


def test_a_slot_further_than_max_wait_is_refused_and_not_taken() -> None:
    fake = FakeTime()
    pacer = Pacer(2, clock=fake.clock, sleep=fake.sleep)
    pacer.acquire()
    with pytest.raises(PacerTimeout):
        pacer.acquire(max_wait=0.1)
    assert pacer.acquire(max_wait=0.5) == pytest.approx(0.5)  # the refused call reserved nothing


def test_hold_pushes_the_next_slot_back() -> None:
    fake = FakeTime()
    pacer = Pacer(100, clock=fake.clock, sleep=fake.sleep)
    pacer.acquire()
    pacer.hold(3.0)
    assert pacer.acquire() == pytest.approx(3.0)
    pacer.hold(0.0)  # a shorter hold never pulls a later slot forward
    assert pacer.acquire() == pytest.approx(0.01)


@pytest.mark.parametrize("rate", [0, -1])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(rate)


def test_the_cap_is_shared_out_evenly() -> None:
    assert per_instance_rate(100, 5) == 20
    assert per_instance_rate(3, 10) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        per_instance_rate(100, 0)


# -- the transport, under the real client -------------------------------------------------------


def paced_client(fake: FakeTime, rate: float, handler: Any) -> tuple[DmhubClient, Pacer]:
    pacer = Pacer(rate, clock=fake.clock, sleep=fake.sleep)
    transport = PacedTransport(pacer, httpx.MockTransport(handler))
    return DmhubClient("https://dmhub.test", token_source=StaticToken("t"), transport=transport), pacer


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": 7, "customerId": 1, "event": "c_x", "date": "2024-05-01T10:00:00Z"})


EVENT = {"customerId": 1, "event": "c_x", "date": "2024-05-01T10:00:00Z", "externalId": "e1"}


def test_every_request_through_the_client_takes_a_slot() -> None:
    fake = FakeTime()
    client, _ = paced_client(fake, 4, created)
    started = fake.clock()
    for _ in range(9):
        client.create_event(EVENT)
    assert fake.clock() - started == pytest.approx(2.0)  # 9 starts at 4/s: the 9th at +2 s


def test_a_429_holds_the_pacer_for_its_retry_after_and_still_reaches_the_sender() -> None:
    fake = FakeTime()
    # within the client's pool timeout (the connect timeout, 2 s): the next call waits it out
    answers = [httpx.Response(429, headers={"Retry-After": "1.5"}, text="slow down")]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else created(request)

    client, _ = paced_client(fake, 100, handler)
    with pytest.raises(RateLimited) as caught:
        client.create_event(EVENT)
    assert caught.value.retry_after == 1.5  # the sender's retry policy still waits this long
    before = fake.clock()
    client.create_event(EVENT)
    assert fake.clock() - before == pytest.approx(1.5)


def test_a_429_without_retry_after_holds_a_default_second() -> None:
    fake = FakeTime()
    answers = [httpx.Response(429, text="slow down")]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else created(request)

    client, _ = paced_client(fake, 100, handler)
    with pytest.raises(RateLimited):
        client.create_event(EVENT)
    before = fake.clock()
    client.create_event(EVENT)
    assert fake.clock() - before == pytest.approx(DEFAULT_HOLD_SECONDS)


def test_a_wait_beyond_the_calls_time_fails_as_a_retryable_transport_error() -> None:
    fake = FakeTime()
    client, pacer = paced_client(fake, 100, created)
    pacer.hold(30.0)
    # the client bounds the pool timeout by the deadline (here 0.5 s away)
    with pytest.raises(TransportError) as caught:
        client.create_event(EVENT, deadline=time.monotonic() + 0.5)
    assert caught.value.retryable
    assert "PoolTimeout" in str(caught.value)


def test_paced_transport_talks_http_and_keeps_headroom_for_jitter() -> None:
    transport = paced_transport(50, max_connections=2)
    assert isinstance(transport.inner, httpx.HTTPTransport)
    assert transport.pacer.rate == pytest.approx(50 * HEADROOM)
    assert 0.9 <= HEADROOM < 1
    # a start up to one slot late still leaves the busiest second within the share
    assert math.ceil(50 * HEADROOM) <= 50 - 1
    transport.close()


# -- settings ---------------------------------------------------------------------------------

BASE = {"IDEMPOTENCY_TABLE": "t", "DEAD_LETTER_QUEUE_URL": "https://sqs.test/dlq"}


def test_no_cap_unless_set() -> None:
    settings = SenderSettings.from_env(BASE)
    assert settings.dmhub_max_requests_per_second is None
    assert settings.dmhub_rate_per_instance is None
    assert SenderSettings.from_env({**BASE, "DMHUB_MAX_REQUESTS_PER_SECOND": ""}).dmhub_rate_per_instance is None


def test_the_cap_is_divided_by_the_instances() -> None:
    settings = SenderSettings.from_env({**BASE, "DMHUB_MAX_REQUESTS_PER_SECOND": "100", "SENDER_MAX_INSTANCES": "8"})
    assert settings.dmhub_max_requests_per_second == 100
    assert settings.dmhub_rate_per_instance == 12.5


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DMHUB_MAX_REQUESTS_PER_SECOND": "fast"}, "DMHUB_MAX_REQUESTS_PER_SECOND"),
        ({"DMHUB_MAX_REQUESTS_PER_SECOND": "0"}, "DMHUB_MAX_REQUESTS_PER_SECOND"),
        ({"SENDER_MAX_INSTANCES": "0"}, "SENDER_MAX_INSTANCES"),
    ],
)
def test_a_bad_cap_setting_fails_the_cold_start_naming_it(variables: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        SenderSettings.from_env({**BASE, **variables})


@pytest.mark.parametrize(("cap", "paced"), [(None, False), ("60", True)])
def test_the_sender_is_paced_only_when_a_cap_is_set(cap: str | None, paced: bool) -> None:
    import boto3
    from moto import mock_aws

    from dmhub_adapter import aws
    from dmhub_adapter.secrets import clear_credentials_cache
    from dmhub_adapter.sender.bootstrap import build_sender

    variables = {**BASE, **({"DMHUB_MAX_REQUESTS_PER_SECOND": cap, "SENDER_MAX_INSTANCES": "3"} if cap else {})}
    settings = SenderSettings.from_env(variables)
    with mock_aws():
        aws.reset_clients()
        clear_credentials_cache()
        boto3.client("secretsmanager").create_secret(
            Name=settings.dmhub_secret_name, SecretString='{"appId": "a", "secret": "s"}'
        )
        runtime = build_sender(settings)
        try:
            transport = runtime.dmhub._http._transport
            assert isinstance(transport, PacedTransport) is paced
            if paced:
                assert isinstance(transport, PacedTransport)
                assert transport.pacer.rate == pytest.approx(20 * HEADROOM)  # 60/s over 3 instances
        finally:
            runtime.close()
            aws.reset_clients()
            clear_credentials_cache()


# -- what one invocation can carry ------------------------------------------------------------


def test_starts_within_counts_the_free_first_start_and_one_per_interval() -> None:
    fake = FakeTime()
    pacer = Pacer(4 * HEADROOM, clock=fake.clock, sleep=fake.sleep)
    started = 0
    while True:
        try:
            pacer.acquire(max_wait=10.1 - (fake.now - 1000.0))
        except PacerTimeout:
            break
        started += 1
    assert started == starts_within(4.0, 10.1) == 1 + math.floor(10.1 * 4 * HEADROOM)
    assert starts_within(4.0, -1.0) == 0


@pytest.mark.parametrize(
    ("records", "share", "seconds", "per_request", "shortfall"),
    [
        (50, 1.0, 29.0, 1, (50, 28)),  # 1/s each (cap 5 over 5 instances): 28 of 50
        (50, 2.0, 29.0, 1, None),  # 56 starts carry 50
        (10, 0.4, 29.0, 1, None),  # batches of 10 at a cap of 2/s over 5 instances
        (10, 0.2, 29.0, 1, (10, 6)),  # but not at 1/s over 5
        (100, 0.01, 29.0, 100, None),  # one collector call
        (150, 0.01, 29.0, 100, (2, 1)),
    ],
)
def test_pace_shortfall(records: int, share: float, seconds: float, per_request: int,
                        shortfall: tuple[int, int] | None) -> None:
    found = pace_shortfall(records, share, seconds, events_per_request=per_request)
    if shortfall is None:
        assert found is None
        return
    assert found is not None
    assert (found.requests_needed, found.requests_possible) == shortfall
    assert (found.records, found.share_per_second, found.seconds) == (records, share, seconds)
