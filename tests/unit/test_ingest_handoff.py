"""The claim → enqueue → mark protocol against in-memory fakes (the moto runs are integration)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dmhub_adapter.ingest.errors import DependencyUnavailable
from dmhub_adapter.ingest.handoff import Handoff
from dmhub_adapter.model.customer_event import CustomerEvent, Identity, QueuedEvent
from dmhub_adapter.store.claims import Claim, ClaimStatus, fingerprint


def queued(external_id: str) -> QueuedEvent:
    return QueuedEvent(
        source="acme", account="a", claim_key=f"acme#a#{external_id}", trace_id="req-1", rule="r",
        identity=Identity(type="acme-user", value="u1"),
        event=CustomerEvent(event="c_x", date="2024-11-28T08:00:00Z", externalId=external_id),
    )


class FakeClaims:
    """A claim store whose answers a test scripts per key; records every call."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.scripted: dict[str, Iterator[ClaimStatus | None]] = {}
        self.fail_claim_on: str | None = None
        self.fail_mark = False
        self.leases: list[float | None] = []

    def claim(self, key: str, *, trace_id: str | None = None, lease_seconds: float | None = None) -> Claim:
        self.calls.append(("claim", key))
        self.leases.append(lease_seconds)
        if key == self.fail_claim_on:
            raise RuntimeError("throttled")
        if key in self.scripted:
            status = next(self.scripted[key])
            if status is not None:
                return Claim(key=key, acquired=False, status=status)
        elif key in self.items:
            return Claim(key=key, acquired=False, status=ClaimStatus(self.items[key]["status"]))
        self.items[key] = {"status": "PENDING", "lease": f"L-{key}"}
        return Claim(key=key, acquired=True, lease=f"L-{key}")

    def mark_queued(self, key: str, lease: str, message_id: str | None) -> bool:
        self.calls.append(("mark", key))
        if self.fail_mark:
            raise RuntimeError("mark failed")
        self.items[key] = {"status": "QUEUED", "messageId": message_id}
        return True

    def release(self, key: str, lease: str) -> bool:
        self.calls.append(("release", key))
        self.items.pop(key, None)
        return True


class FakeSqs:
    def __init__(self, failing_ids: set[str] | None = None, error: Exception | None = None) -> None:
        self.failing_ids = failing_ids or set()
        self.error = error
        self.batches: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.error:
            raise self.error
        self.batches.append(Entries)
        ok = [e for e in Entries if e["Id"] not in self.failing_ids]
        bad = [e for e in Entries if e["Id"] in self.failing_ids]
        return {
            "Successful": [{"Id": e["Id"], "MessageId": f"m-{e['Id']}"} for e in ok],
            "Failed": [{"Id": e["Id"], "Code": "X", "Message": "no"} for e in bad],
        }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def handoff(claims: FakeClaims, sqs: FakeSqs, clock: Clock | None = None, wait: float = 1.0) -> Handoff:
    clock = clock or Clock()
    return Handoff(claims, "q", sqs_client=sqs, pending_wait=wait, poll_interval=0.1,  # type: ignore[arg-type]
                   sleep=clock.sleep, monotonic=clock.monotonic)


def test_claims_enqueues_in_one_batch_and_marks_each() -> None:
    claims, sqs = FakeClaims(), FakeSqs()

    result = handoff(claims, sqs).submit([queued("a"), queued("b")], lease_seconds=7)

    assert (result.enqueued, result.duplicates, result.in_flight) == (2, 0, 0)
    assert result.message_ids == ["m-0", "m-1"]
    assert len(sqs.batches) == 1
    entry = sqs.batches[0][0]
    assert entry["MessageAttributes"]["event"] == {"DataType": "String", "StringValue": "c_x"}
    assert '"externalId":"a"' in entry["MessageBody"]
    assert claims.items["acme#a#a"] == {"status": "QUEUED", "messageId": "m-0"}
    assert claims.leases == [7, 7]


def test_the_same_key_twice_in_a_payload_is_one_event() -> None:
    claims, sqs = FakeClaims(), FakeSqs()

    result = handoff(claims, sqs).submit([queued("a"), queued("a")])

    assert (result.enqueued, result.duplicates) == (1, 1)
    assert [c for c in claims.calls if c[0] == "claim"] == [("claim", "acme#a#a")]


@pytest.mark.parametrize("status", [ClaimStatus.QUEUED, ClaimStatus.DELIVERED, ClaimStatus.FAILED])
def test_settled_claims_are_duplicates(status: ClaimStatus) -> None:
    claims, sqs = FakeClaims(), FakeSqs()
    claims.items["acme#a#a"] = {"status": status.value}

    result = handoff(claims, sqs).submit([queued("a")])

    assert (result.enqueued, result.duplicates) == (0, 1)
    assert sqs.batches == []


def test_a_pending_claim_that_settles_while_waiting_is_a_duplicate() -> None:
    claims, sqs, clock = FakeClaims(), FakeSqs(), Clock()
    claims.scripted["acme#a#a"] = iter([ClaimStatus.PENDING, ClaimStatus.PENDING, ClaimStatus.QUEUED])

    result = handoff(claims, sqs, clock).submit([queued("a")])

    assert (result.enqueued, result.duplicates, result.in_flight) == (0, 1, 0)
    assert clock.sleeps == [0.1, 0.1]


def test_a_pending_claim_that_is_released_while_waiting_is_taken_over() -> None:
    claims, sqs, clock = FakeClaims(), FakeSqs(), Clock()
    claims.scripted["acme#a#a"] = iter([ClaimStatus.PENDING, None])

    result = handoff(claims, sqs, clock).submit([queued("a"), queued("b")])

    assert (result.enqueued, result.duplicates, result.in_flight) == (2, 0, 0)
    assert len(sqs.batches) == 2  # b at once, a after the wait


def test_a_claim_pending_beyond_the_wait_is_reported_in_flight() -> None:
    claims, sqs, clock = FakeClaims(), FakeSqs(), Clock()
    claims.scripted["acme#a#a"] = iter([ClaimStatus.PENDING] * 100)

    result = handoff(claims, sqs, clock, wait=0.5).submit([queued("a")])

    assert result.in_flight == 1 and result.enqueued == 0
    assert 0.5 - 0.1 < clock.now <= 0.5 + 1e-9  # waited the budget, never past it


def test_no_wait_budget_means_a_single_check() -> None:
    claims, sqs, clock = FakeClaims(), FakeSqs(), Clock()
    claims.scripted["acme#a#a"] = iter([ClaimStatus.PENDING] * 100)

    result = handoff(claims, sqs, clock).submit([queued("a")], wait_seconds=0)

    assert result.in_flight == 1 and clock.sleeps == []


def test_a_store_failure_releases_this_requests_claims_and_enqueues_nothing() -> None:
    claims, sqs = FakeClaims(), FakeSqs()
    claims.fail_claim_on = "acme#a#b"

    with pytest.raises(DependencyUnavailable) as raised:
        handoff(claims, sqs).submit([queued("a"), queued("b")])

    assert raised.value.reason == "claim_store" and raised.value.status == 503
    assert ("release", "acme#a#a") in claims.calls and claims.items == {}
    assert sqs.batches == []


def test_entries_sqs_refuses_are_released_and_the_sent_ones_marked() -> None:
    claims, sqs = FakeClaims(), FakeSqs(failing_ids={"1"})

    with pytest.raises(DependencyUnavailable) as raised:
        handoff(claims, sqs).submit([queued("a"), queued("b"), queued("c")])

    assert raised.value.reason == "event_queue"
    assert len(sqs.batches) == 3  # first try, then only the failed entry twice
    assert [len(batch) for batch in sqs.batches] == [3, 1, 1]
    assert claims.items["acme#a#a"]["status"] == "QUEUED" and claims.items["acme#a#c"]["status"] == "QUEUED"
    assert "acme#a#b" not in claims.items


def test_a_client_error_on_send_releases_everything() -> None:
    claims, sqs = FakeClaims(), FakeSqs(error=ConnectionError("endpoint down"))

    with pytest.raises(DependencyUnavailable):
        handoff(claims, sqs).submit([queued("a")])

    assert claims.items == {}


def test_a_failed_mark_after_a_send_still_counts_as_enqueued() -> None:
    claims, sqs = FakeClaims(), FakeSqs()
    claims.fail_mark = True

    result = handoff(claims, sqs).submit([queued("a")])

    assert result.enqueued == 1 and claims.items["acme#a#a"]["status"] == "PENDING"


def test_fingerprints_hide_the_key_but_are_stable() -> None:
    assert fingerprint("wechat#oa#gh|openid-1") == fingerprint("wechat#oa#gh|openid-1")
    assert "openid" not in fingerprint("wechat#oa#gh|openid-1") and len(fingerprint("x")) == 12
