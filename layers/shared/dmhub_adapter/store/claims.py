"""Idempotency claims: one item per event, keyed ``{source}#{account}#{externalId}``.

State machine (``status``)::

    (absent | expired | PENDING with lapsed lease)
        ──claim──▶ PENDING (leaseUntil = now + lease)
    PENDING ──mark_queued (still holding the lease)──▶ QUEUED
    PENDING ──release (enqueue failed)──▶ (absent)
    QUEUED  ──sender──▶ DELIVERED (dmhubId) | FAILED (reason)
    PENDING ──sender (faster than mark_queued)──▶ DELIVERED | FAILED; mark_queued then only
            records the message id: a claim never moves back

A claim is a lease: if the ingest dies between claim and enqueue, the lease lapses and the
platform's retry claims again. Every item carries ``expiresAt`` (DynamoDB TTL) for the
dedup window; since TTL deletion is lazy the condition compares it too.

A lapsed lease is taken over by the next claim even if the first holder had already enqueued
(it died before ``mark_queued``): the event is then enqueued twice with the same
``externalId``, which DM Hub deduplicates. The late holder's ``mark_queued`` fails on the
lease token and changes nothing.

Duplicates cost one failed conditional write: ``ReturnValuesOnConditionCheckFailure`` hands
back the existing item, so no extra read is needed to learn its status. The claim is the
table's lease primitive (:mod:`.lease`) with "available" meaning absent, expired or PENDING.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dmhub_adapter.records import record
from dmhub_adapter.store.lease import KEY, LEASE_UNTIL, TTL_ATTRIBUTE, LeaseTable, Refused, number, string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient




def fingerprint(value: str) -> str:
    """A short, stable digest of a claim key (or any id) for logs: claim keys embed openids and
    buyer ids, which must not reach a log, while the digest still lets lines be correlated."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]

#: ``dmhubId`` of a claim delivered through the collector endpoint, which answers no event id
COLLECTOR_PLACEHOLDER = "collector"


class ClaimStatus(StrEnum):
    """Where a claimed event stands: see the module's state machine."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


def claim_key(source: str, account: str, external_id: str) -> str:
    """The claim item's key: the mapping's externalId, scoped by source and account."""
    return f"{source}#{account}#{external_id}"


@record(frozen=True)
class Claim:
    """The outcome of a claim attempt."""

    key: str
    acquired: bool
    #: our lease token when acquired; otherwise None
    lease: str | None = None
    #: the existing item's status when not acquired
    status: ClaimStatus | None = None
    lease_until_ms: int | None = None

    def lease_lapsed(self, now: float | None = None) -> bool:
        """Whether the existing item's lease has run out (the next claim takes it over)."""
        if self.lease_until_ms is None:
            return False
        return self.lease_until_ms < int((time.time() if now is None else now) * 1000)


class ClaimTable:
    """:class:`~dmhub_adapter.store.ClaimStore` on DynamoDB: one request per claim attempt,
    duplicates included (the failed condition hands back the existing item)."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient,
        *,
        lease_seconds: int = 30,
        ttl_seconds: int = 7 * 86400,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.table = table
        self.client = client
        self.leases = LeaseTable(table, client)
        self.lease_seconds = lease_seconds
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def clock(self) -> float:
        """Now, in epoch seconds."""
        # Looked up at call time (not bound at construction) so a test can move the store's
        # notion of "now" without touching the process clock boto3 signs requests with.
        return self._clock() if self._clock is not None else time.time()

    def claim(self, key: str, *, trace_id: str | None = None, lease_seconds: float | None = None) -> Claim:
        """Take the key for ``lease_seconds`` (the store's default when None), or report who has it."""
        now = self.clock()
        seconds = self.lease_seconds if lease_seconds is None else lease_seconds
        item = {
            "status": string(ClaimStatus.PENDING.value),
            "claimedAt": number(now),
            TTL_ATTRIBUTE: number(now + self.ttl_seconds),
            **({"traceId": string(trace_id)} if trace_id else {}),
        }
        taken = self.leases.take(
            key,
            # absent, past its dedup window, or PENDING (the primitive adds: with no live lease)
            available="attribute_not_exists(#pk) OR #exp < :now OR #status = :pending",
            now=now,
            seconds=seconds,
            names={"#status": "status", "#exp": TTL_ATTRIBUTE, "#pk": KEY},
            values={":pending": string(ClaimStatus.PENDING.value), ":now": number(now)},
            return_item=True,
            # written anew: an expired item's outcome belongs to the previous event
            replace_with=item,
        )
        if isinstance(taken, Refused):
            status = taken.item.get("status")
            return Claim(
                key=key,
                acquired=False,
                status=ClaimStatus(status) if isinstance(status, str) and status in ClaimStatus.__members__ else None,
                lease_until_ms=taken.item.get(LEASE_UNTIL),
            )
        return Claim(key=key, acquired=True, lease=taken, lease_until_ms=int((now + seconds) * 1000))

    def mark_queued(self, key: str, lease: str, message_id: str | None) -> bool:
        """PENDING → QUEUED if we still hold the lease; False when it was taken over.

        The message is on the queue before this write, so the sender may already have marked
        the claim DELIVERED or FAILED: a claim never moves back. Then only the message id and
        the time are recorded (and the lease dropped), and the answer is True."""
        mid, now = string(message_id or "-"), number(self.clock())
        if self.leases.complete(
            key,
            lease,
            "SET #status = :queued, messageId = :mid, queuedAt = :now",
            names={"#status": "status"},
            values={":queued": string(ClaimStatus.QUEUED.value), ":pending": string(ClaimStatus.PENDING.value),
                    ":mid": mid, ":now": now},
            condition="#status = :pending",
        ):
            return True
        return self.leases.complete(
            key,
            lease,
            "SET messageId = :mid, queuedAt = :now",
            names={"#status": "status"},
            values={":delivered": string(ClaimStatus.DELIVERED.value), ":failed": string(ClaimStatus.FAILED.value),
                    ":mid": mid, ":now": now},
            condition="#status IN (:delivered, :failed)",
        )

    def release(self, key: str, lease: str) -> bool:
        """Give a claim back after a failed enqueue, so the platform's retry can claim it."""
        return self.leases.delete(
            key, lease, condition="#status = :pending", names={"#status": "status"},
            values={":pending": string(ClaimStatus.PENDING.value)},
        )

    def mark_delivered(self, key: str, dmhub_id: int | str | None) -> None:
        """Record the delivery (unconditional: DM Hub's externalId dedup already made it safe)."""
        self.client.update_item(
            TableName=self.table,
            Key={KEY: string(key)},
            UpdateExpression="SET #status = :delivered, dmhubId = :id, deliveredAt = :now REMOVE reason",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":delivered": string(ClaimStatus.DELIVERED.value),
                ":id": string(str(dmhub_id) if dmhub_id is not None else "-"),
                ":now": number(self.clock()),
            },
        )

    def mark_failed(self, key: str, reason: str) -> None:
        """Record a permanent failure; never overwrites a DELIVERED item."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: string(key)},
                UpdateExpression="SET #status = :failed, reason = :reason, failedAt = :now",
                ConditionExpression="attribute_not_exists(#status) OR #status <> :delivered",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":failed": string(ClaimStatus.FAILED.value),
                    ":delivered": string(ClaimStatus.DELIVERED.value),
                    ":reason": string(reason[:1000]),
                    ":now": number(self.clock()),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass

    def get(self, key: str) -> dict[str, Any] | None:
        """The claim item as plain values (consistent read), or None."""
        return self.leases.get(key)
