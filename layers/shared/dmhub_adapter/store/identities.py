"""The identity cache's items: ``pk = identity#{type}#{value}`` → ``customerId``.

Attributes: ``customerId``, ``resolvedAt``, ``expiresAt`` (TTL, ``ttl_days``) and, while a
sender creates the customer, the creation lease (``lease``, ``leaseUntil``). The resolution
protocol is in :mod:`dmhub_adapter.dmhub.identity`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dmhub_adapter.store.lease import LEASE_UNTIL, TTL_ATTRIBUTE, LeaseTable, number

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_TTL_DAYS = 30


def identity_key(identity_type: str, identity_value: str) -> str:
    """The item key of one platform identity."""
    return f"identity#{identity_type}#{identity_value}"


class IdentityTable:
    """:class:`~dmhub_adapter.store.IdentityStore` on DynamoDB."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient,
        *,
        ttl_days: int = DEFAULT_TTL_DAYS,
        lease_seconds: float = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.leases = LeaseTable(table, client)
        self.ttl_seconds = ttl_days * 86400
        self.lease_seconds = lease_seconds
        self.clock = clock

    def read(self, key: str) -> tuple[int | None, int | None]:
        """(customerId, live lease's end in ms) of the item, ignoring one past its TTL."""
        item = self.leases.get(key)
        if not item:
            return None, None
        if TTL_ATTRIBUTE in item and int(item[TTL_ATTRIBUTE]) < self.clock():
            return None, None
        customer = item.get("customerId")
        return (int(customer) if customer is not None else None), item.get(LEASE_UNTIL)

    def save(self, key: str, customer_id: int, lease: str | None = None) -> None:
        """Cache the customer id; under ``lease`` only while it is still held."""
        now = self.clock()
        update = "SET customerId = :cid, #ttl = :ttl, resolvedAt = :at"
        names = {"#ttl": TTL_ATTRIBUTE}
        values = {":cid": number(customer_id), ":ttl": number(now + self.ttl_seconds), ":at": number(now)}
        if lease is not None:
            # lost lease: another resolver took over; DM Hub's upsert is keyed by the identity,
            # so both got the same customer and the cache entry is theirs to write
            self.leases.complete(key, lease, update, names=names, values=values)
            return
        self.leases.client.update_item(
            TableName=self.leases.table,
            Key={"pk": {"S": key}},
            UpdateExpression=update + " REMOVE lease, leaseUntil",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def take_lease(self, key: str) -> str | None:
        """The creation lease, when no customer is cached (or the cache expired)."""
        now = self.clock()
        taken = self.leases.take(
            key,
            available="attribute_not_exists(#pk) OR #ttl < :now OR attribute_not_exists(customerId)",
            now=now,
            seconds=self.lease_seconds,
            also_set=", #ttl = :ttl",
            names={"#ttl": TTL_ATTRIBUTE},
            values={":now": number(now), ":ttl": number(now + self.ttl_seconds)},
        )
        return taken if isinstance(taken, str) else None

    def release(self, key: str, lease: str) -> None:
        """Drop the creation lease after a failed creation."""
        self.leases.release(key, lease)
