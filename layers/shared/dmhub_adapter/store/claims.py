"""Idempotency claims: one item per event, keyed ``{source}#{account}#{externalId}``.

State machine (``status``)::

    (absent | expired | PENDING with lapsed lease)
        ──claim──▶ PENDING (leaseUntil = now + lease)
    PENDING ──mark_queued (still holding the lease)──▶ QUEUED
    PENDING ──release (enqueue failed)──▶ (absent)
    QUEUED  ──sender──▶ DELIVERED (dmhubId) | FAILED (reason)

A claim is a lease: if the ingest dies between claim and enqueue, the lease lapses and the
platform's retry claims again. Every item carries ``expiresAt`` (DynamoDB TTL) for the
dedup window; since TTL deletion is lazy the condition compares it too.

A lapsed lease is taken over by the next claim even if the first holder had already enqueued
(it died before ``mark_queued``): the event is then enqueued twice with the same
``externalId``, which DM Hub deduplicates. The late holder's ``mark_queued`` fails on the
lease token and changes nothing.

Duplicates cost one failed conditional write: ``ReturnValuesOnConditionCheckFailure`` hands
back the existing item, so no extra read is needed to learn its status.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

KEY = "pk"
TTL_ATTRIBUTE = "expiresAt"


class ClaimStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


def claim_key(source: str, account: str, external_id: str) -> str:
    return f"{source}#{account}#{external_id}"


@dataclass(frozen=True)
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


def _from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, typed in item.items():
        (kind, value), = typed.items()
        out[name] = int(value) if kind == "N" else value
    return out


class ClaimStore:
    """Conditional writes on the idempotency table; one request per duplicate."""

    def __init__(
        self,
        table: str,
        client: Any | None = None,
        *,
        lease_seconds: int = 30,
        ttl_seconds: int = 7 * 86400,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if client is None:
            from dmhub_adapter import aws

            client = aws.client("dynamodb")
        self.table = table
        self.client = client
        self.lease_seconds = lease_seconds
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def clock(self) -> float:
        # Looked up at call time (not bound at construction) so a test can move the store's
        # notion of "now" without touching the process clock boto3 signs requests with.
        return self._clock() if self._clock is not None else time.time()

    def claim(self, key: str, *, trace_id: str | None = None, lease_seconds: float | None = None) -> Claim:
        """Take the key for ``lease_seconds`` (the store's default when None), or report who has it."""
        now = self.clock()
        lease = uuid.uuid4().hex
        lease_until = int((now + (self.lease_seconds if lease_seconds is None else lease_seconds)) * 1000)
        item = {
            KEY: {"S": key},
            "status": {"S": ClaimStatus.PENDING.value},
            "lease": {"S": lease},
            "leaseUntil": {"N": str(lease_until)},
            "claimedAt": {"N": str(int(now))},
            TTL_ATTRIBUTE: {"N": str(int(now + self.ttl_seconds))},
        }
        if trace_id:
            item["traceId"] = {"S": trace_id}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=(
                    "attribute_not_exists(#pk) OR #exp < :now "
                    "OR (#status = :pending AND #leaseUntil < :nowms)"
                ),
                ExpressionAttributeNames={
                    "#pk": KEY,
                    "#exp": TTL_ATTRIBUTE,
                    "#status": "status",
                    "#leaseUntil": "leaseUntil",
                },
                ExpressionAttributeValues={
                    ":now": {"N": str(int(now))},
                    ":nowms": {"N": str(int(now * 1000))},
                    ":pending": {"S": ClaimStatus.PENDING.value},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            old = _from_dynamo(exc.response.get("Item") or {})
            status = old.get("status")
            return Claim(
                key=key,
                acquired=False,
                status=ClaimStatus(status) if isinstance(status, str) and status in ClaimStatus.__members__ else None,
                lease_until_ms=old.get("leaseUntil"),
            )
        return Claim(key=key, acquired=True, lease=lease, lease_until_ms=lease_until)

    def mark_queued(self, key: str, lease: str, message_id: str | None) -> bool:
        """PENDING → QUEUED if we still hold the lease; False when it was taken over."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                UpdateExpression="SET #status = :queued, messageId = :mid, queuedAt = :now REMOVE leaseUntil",
                ConditionExpression="#status = :pending AND lease = :lease",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":queued": {"S": ClaimStatus.QUEUED.value},
                    ":pending": {"S": ClaimStatus.PENDING.value},
                    ":lease": {"S": lease},
                    ":mid": {"S": message_id or "-"},
                    ":now": {"N": str(int(self.clock()))},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, key: str, lease: str) -> bool:
        """Give a claim back after a failed enqueue, so the platform's retry can claim it."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                ConditionExpression="#status = :pending AND lease = :lease",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": ClaimStatus.PENDING.value},
                    ":lease": {"S": lease},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_delivered(self, key: str, dmhub_id: int | str | None) -> None:
        """Record the delivery (unconditional: DM Hub's externalId dedup already made it safe)."""
        self.client.update_item(
            TableName=self.table,
            Key={KEY: {"S": key}},
            UpdateExpression="SET #status = :delivered, dmhubId = :id, deliveredAt = :now REMOVE reason",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":delivered": {"S": ClaimStatus.DELIVERED.value},
                ":id": {"S": str(dmhub_id) if dmhub_id is not None else "-"},
                ":now": {"N": str(int(self.clock()))},
            },
        )

    def mark_failed(self, key: str, reason: str) -> None:
        """Record a permanent failure; never overwrites a DELIVERED item."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                UpdateExpression="SET #status = :failed, reason = :reason, failedAt = :now",
                ConditionExpression="attribute_not_exists(#status) OR #status <> :delivered",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": ClaimStatus.FAILED.value},
                    ":delivered": {"S": ClaimStatus.DELIVERED.value},
                    ":reason": {"S": reason[:1000]},
                    ":now": {"N": str(int(self.clock()))},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass

    def get(self, key: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key={KEY: {"S": key}}, ConsistentRead=True)
        item = response.get("Item")
        return _from_dynamo(item) if item else None
