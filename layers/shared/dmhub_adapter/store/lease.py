"""The lease primitive every item of the table uses, and the wait for another holder.

A lease is two attributes on an item: ``lease`` (a random token only its holder knows) and
``leaseUntil`` (epoch milliseconds). :meth:`LeaseTable.take` sets both in one conditional
update that succeeds only when the item is *available* (a condition the caller states: no
item yet, an expired one, a token still as seen…) and *no live lease* is held. Everything the
holder does afterwards (:meth:`complete`, :meth:`release`) is conditional on ``lease =
:lease``, so a holder whose lease lapsed and was taken over changes nothing.

:func:`wait_for_holder` is the loser's side: poll the item with a growing pause, never
sleeping past the current holder's lease (a dead holder is taken over soon), until the
result appears, the lease can be taken, or the wait runs out.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from dmhub_adapter.records import record

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

#: the table's partition key
KEY = "pk"
#: the table's TTL attribute (epoch seconds)
TTL_ATTRIBUTE = "expiresAt"
LEASE = "lease"
LEASE_UNTIL = "leaseUntil"

T = TypeVar("T")

POLL_SECONDS = 0.05
POLL_MAX_SECONDS = 0.4


def from_dynamo(item: Mapping[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item (``{"name": {"S": "x"}}``) as plain values (``N`` as int)."""
    out: dict[str, Any] = {}
    for name, typed in item.items():
        ((kind, value),) = typed.items()
        out[name] = int(value) if kind == "N" else value
    return out


def number(value: float) -> AttributeValueTypeDef:
    """A DynamoDB number attribute (whole part of ``value``)."""
    return {"N": str(int(value))}


def string(value: str) -> AttributeValueTypeDef:
    """A DynamoDB string attribute."""
    return {"S": value}


@record(frozen=True)
class Refused:
    """A lease that was not taken, with the item as it stood (when DynamoDB returned it)."""

    item: dict[str, Any]


class LeaseTable:
    """Conditional lease operations on one table's items.

    Example::

        table = LeaseTable("my-table", aws.dynamodb())
        lease = table.take("token#dmhub#app", available="attribute_not_exists(#pk)", now=time.time(),
                           seconds=15)
        if lease is not None:
            table.complete("token#dmhub#app", lease, "SET #token = :token", values={":token": string("t")},
                           names={"#token": "token"})
    """

    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self.table = table
        self.client = client

    def take(
        self,
        key: str,
        *,
        available: str,
        now: float,
        seconds: float,
        also_set: str = "",
        remove: str = "",
        names: Mapping[str, str] | None = None,
        values: Mapping[str, AttributeValueTypeDef] | None = None,
        return_item: bool = False,
        replace_with: Mapping[str, AttributeValueTypeDef] | None = None,
    ) -> str | Refused:
        """Take a lease on ``key`` for ``seconds`` when ``available`` holds and no lease is live.

        ``also_set`` adds ``SET`` clauses written with the lease (``", a = :a"`` form) and
        ``remove`` attributes to drop. With ``replace_with`` the item is written anew (a
        conditional put of those attributes plus the lease) instead of updated, so nothing of
        a previous item survives. Returns the lease token, or :class:`Refused` carrying the
        existing item when ``return_item`` asks DynamoDB for it (one request either way).
        """
        lease = uuid.uuid4().hex
        all_names = {"#lease": LEASE, "#leaseUntil": LEASE_UNTIL, **(names or {})}
        if "#pk" in available or "#pk" in also_set:
            all_names["#pk"] = KEY
        all_values: dict[str, AttributeValueTypeDef] = {
            ":lease": string(lease),
            ":leaseUntil": number((now + seconds) * 1000),
            ":nowms": number(now * 1000),
            **(values or {}),
        }
        condition = f"({available}) AND (attribute_not_exists(#leaseUntil) OR #leaseUntil < :nowms)"
        returned: Literal["ALL_OLD", "NONE"] = "ALL_OLD" if return_item else "NONE"
        try:
            if replace_with is not None:
                used = set(re.findall(r"[#:][A-Za-z0-9_]+", condition))
                put_values = {name: value for name, value in all_values.items() if name in used}
                self.client.put_item(
                    TableName=self.table,
                    Item={**replace_with, KEY: string(key), LEASE: all_values[":lease"],
                          LEASE_UNTIL: all_values[":leaseUntil"]},
                    ConditionExpression=condition,
                    ExpressionAttributeNames={k: v for k, v in all_names.items() if k in used},
                    ExpressionAttributeValues=put_values,
                    ReturnValuesOnConditionCheckFailure=returned,
                )
            else:
                update = f"SET #lease = :lease, #leaseUntil = :leaseUntil{also_set}"
                if remove:
                    update += f" REMOVE {remove}"
                self.client.update_item(
                    TableName=self.table,
                    Key={KEY: string(key)},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=all_names,
                    ExpressionAttributeValues=all_values,
                    ReturnValuesOnConditionCheckFailure=returned,
                )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            old: Any = exc.response.get("Item") or {}
            return Refused(from_dynamo(old))
        return lease

    def complete(
        self,
        key: str,
        lease: str,
        update: str,
        *,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, AttributeValueTypeDef] | None = None,
        drop_lease: bool = True,
        condition: str | None = None,
    ) -> bool:
        """Apply ``update`` (a ``SET …`` expression) while holding ``lease``, dropping the lease
        with it by default; False when the lease was lost or ``condition`` (a further condition
        expression) does not hold."""
        expression = update + (" REMOVE #lease, #leaseUntil" if drop_lease else "")
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: string(key)},
                UpdateExpression=expression,
                ConditionExpression="#lease = :lease" + (f" AND ({condition})" if condition else ""),
                ExpressionAttributeNames={"#lease": LEASE, "#leaseUntil": LEASE_UNTIL, **(names or {})},
                ExpressionAttributeValues={":lease": string(lease), **(values or {})},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, key: str, lease: str) -> bool:
        """Drop ``lease`` (the item stays); False when it was no longer ours."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: string(key)},
                UpdateExpression="REMOVE #lease, #leaseUntil",
                ConditionExpression="#lease = :lease",
                ExpressionAttributeNames={"#lease": LEASE, "#leaseUntil": LEASE_UNTIL},
                ExpressionAttributeValues={":lease": string(lease)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def delete(self, key: str, lease: str, *, condition: str = "", values: Mapping[str, Any] | None = None,
               names: Mapping[str, str] | None = None) -> bool:
        """Delete the item while holding ``lease`` (and ``condition``, when given)."""
        expression = "#lease = :lease" + (f" AND {condition}" if condition else "")
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={KEY: string(key)},
                ConditionExpression=expression,
                ExpressionAttributeNames={"#lease": LEASE, **(names or {})},
                ExpressionAttributeValues={":lease": string(lease), **(values or {})},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get(self, key: str) -> dict[str, Any] | None:
        """The item as plain values (consistent read), or None."""
        response = self.client.get_item(TableName=self.table, Key={KEY: string(key)}, ConsistentRead=True)
        item = response.get("Item")
        return from_dynamo(item) if item else None


def wait_for_holder(
    attempt: Callable[[], tuple[T | None, int | None]],
    *,
    wait_seconds: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    timed_out: Callable[[], Exception],
) -> T:
    """Call ``attempt`` until it returns a result, pausing between calls.

    ``attempt`` returns ``(result, lease_until_ms)``: a result ends the wait; otherwise the
    pause grows from 50 to 400 ms but never past the live lease's end, so a holder that died
    is taken over as soon as its lease lapses. After ``wait_seconds`` raises ``timed_out()``.
    """
    started = time.monotonic()
    poll = POLL_SECONDS
    while True:
        result, lease_until_ms = attempt()
        if result is not None:
            return result
        if time.monotonic() - started >= wait_seconds:
            raise timed_out()
        pause = poll
        if lease_until_ms is not None:
            pause = min(pause, max(0.0, lease_until_ms / 1000 - clock()) + 0.01)
        sleep(pause)
        poll = min(poll * 1.5, POLL_MAX_SECONDS)
