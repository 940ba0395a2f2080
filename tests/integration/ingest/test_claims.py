"""The claim store's state machine against DynamoDB (moto over HTTP)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from dmhub_adapter.store.claims import ClaimStatus, ClaimTable


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(aws: Any) -> tuple[ClaimTable, Clock]:
    clock = Clock()
    client = boto3.session.Session().client("dynamodb")
    return ClaimTable(aws.table, client=client, lease_seconds=10, ttl_seconds=3600, clock=clock), clock


def test_claim_writes_a_pending_lease_with_the_dedup_ttl(store: tuple[ClaimTable, Clock]) -> None:
    claims, clock = store

    claim = claims.claim("s#a#1", trace_id="req-1", lease_seconds=4)

    assert claim.acquired and claim.lease
    item = claims.get("s#a#1")
    assert item is not None
    assert (item["status"], item["lease"], item["traceId"]) == ("PENDING", claim.lease, "req-1")
    assert item["leaseUntil"] == int((clock.now + 4) * 1000)
    assert item["expiresAt"] == int(clock.now + 3600)


def test_a_second_claim_reports_the_holder_without_an_extra_read(store: tuple[ClaimTable, Clock]) -> None:
    claims, clock = store
    first = claims.claim("s#a#1")

    second = claims.claim("s#a#1")

    assert not second.acquired and second.status is ClaimStatus.PENDING and second.lease is None
    assert second.lease_until_ms == first.lease_until_ms
    assert not second.lease_lapsed(clock.now) and second.lease_lapsed(clock.now + 11)
    assert claims.mark_queued("s#a#1", str(first.lease), "mid-1")
    third = claims.claim("s#a#1")
    assert not third.acquired and third.status is ClaimStatus.QUEUED


def test_only_the_lease_holder_marks_or_releases(store: tuple[ClaimTable, Clock]) -> None:
    claims, _ = store
    claim = claims.claim("s#a#1")

    assert not claims.mark_queued("s#a#1", "someone-else", "m")
    assert not claims.release("s#a#1", "someone-else")
    assert claims.release("s#a#1", str(claim.lease))
    assert claims.get("s#a#1") is None
    assert claims.claim("s#a#1").acquired


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_can_no_longer_mark(store: tuple[ClaimTable, Clock]) -> None:
    claims, clock = store
    old = claims.claim("s#a#1")
    clock.now += 11

    new = claims.claim("s#a#1")

    assert new.acquired and new.lease != old.lease
    assert not claims.mark_queued("s#a#1", str(old.lease), "late")
    assert claims.mark_queued("s#a#1", str(new.lease), "m2")
    item = claims.get("s#a#1")
    assert item is not None and (item["status"], item["messageId"]) == ("QUEUED", "m2")
    assert "leaseUntil" not in item


def test_queued_items_are_duplicates_until_the_dedup_window_ends(store: tuple[ClaimTable, Clock]) -> None:
    claims, clock = store
    claims.mark_queued("s#a#1", str(claims.claim("s#a#1").lease), "m")
    clock.now += 3599

    assert not claims.claim("s#a#1").acquired
    clock.now += 2  # past expiresAt: TTL deletion is lazy, so the condition decides
    assert claims.claim("s#a#1").acquired


def test_sender_outcomes_and_failed_never_overwrites_delivered(store: tuple[ClaimTable, Clock]) -> None:
    claims, _ = store
    claims.mark_queued("s#a#1", str(claims.claim("s#a#1").lease), "m")

    claims.mark_delivered("s#a#1", 123)
    claims.mark_failed("s#a#1", "late failure")

    item = claims.get("s#a#1")
    assert item is not None and (item["status"], item["dmhubId"]) == ("DELIVERED", "123")
    assert claims.claim("s#a#1").status is ClaimStatus.DELIVERED


@pytest.mark.parametrize("outcome", ["DELIVERED", "FAILED"])
def test_a_sender_faster_than_mark_queued_is_not_undone(store: tuple[ClaimTable, Clock], outcome: str) -> None:
    """The message is on the queue before the ingest marks QUEUED, so the sender can finish
    first: the late mark_queued records the message id and leaves the outcome alone."""
    claims, _ = store
    claim = claims.claim("s#a#1")
    if outcome == "DELIVERED":
        claims.mark_delivered("s#a#1", 42)
    else:
        claims.mark_failed("s#a#1", "refused")

    assert claims.mark_queued("s#a#1", str(claim.lease), "mid-1")

    item = claims.get("s#a#1")
    assert item is not None
    assert (item["status"], item["messageId"]) == (outcome, "mid-1")
    assert "lease" not in item and "leaseUntil" not in item
    assert item.get("dmhubId") == ("42" if outcome == "DELIVERED" else None)
    later = claims.claim("s#a#1")
    assert not later.acquired and later.status is ClaimStatus(outcome)


def test_a_late_mark_queued_of_a_taken_over_claim_still_changes_nothing(store: tuple[ClaimTable, Clock]) -> None:
    claims, clock = store
    first = claims.claim("s#a#1")
    clock.now += 11
    second = claims.claim("s#a#1")
    claims.mark_delivered("s#a#1", 7)

    assert not claims.mark_queued("s#a#1", str(first.lease), "mid-old")
    item = claims.get("s#a#1")
    assert item is not None and item["status"] == "DELIVERED" and item.get("messageId") is None
    assert claims.mark_queued("s#a#1", str(second.lease), "mid-new")
    assert claims.get("s#a#1")["messageId"] == "mid-new"  # type: ignore[index]
