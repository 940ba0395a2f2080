"""Platform identity → DM Hub ``customerId``.

DM Hub does not check that a ``customerId`` exists, so events carry the platform identity
(WeChat openid, Taobao open uid …) and the sender resolves it here:

1. in-memory cache (per container, bounded), then the DynamoDB item
   ``identity#{type}#{value}`` (TTL ``ttl_days``);
2. ``GET /v1/customeridentities``; a hit is cached;
3. unknown and ``identity.create`` false → :class:`IdentityNotFound` (permanent);
4. unknown and creatable → whoever wins a lease on the DynamoDB item looks up once more
   and ``POST /v1/customerandidentities``; concurrent resolvers of the same identity wait
   for the winner's ``customerId`` instead of creating a second customer. A lease whose
   holder died lapses after ``lease_seconds``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from dmhub_adapter.dmhub.client import DmhubClient, remaining_seconds
from dmhub_adapter.dmhub.errors import IdentityNotFound, TransportError
from dmhub_adapter.model.customer_event import Identity
from dmhub_adapter.store.claims import KEY, TTL_ATTRIBUTE

DEFAULT_TTL_DAYS = 30
DEFAULT_LEASE_SECONDS = 15
DEFAULT_WAIT_SECONDS = 20
MEMORY_ENTRIES = 10_000
_POLL_SECONDS = 0.05
_POLL_MAX_SECONDS = 0.4


def identity_key(identity: Identity) -> str:
    return f"identity#{identity.type}#{identity.value}"


class IdentityResolver:
    def __init__(
        self,
        dmhub: DmhubClient,
        *,
        table: str,
        client: Any | None = None,
        ttl_days: int = DEFAULT_TTL_DAYS,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        memory_entries: int = MEMORY_ENTRIES,
    ) -> None:
        if client is None:
            from dmhub_adapter import aws

            client = aws.client("dynamodb")
        self.dmhub = dmhub
        self.table = table
        self.client = client
        self.ttl_seconds = ttl_days * 86400
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.sleep = sleep
        self.memory_entries = memory_entries
        self._memory: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        #: number of customers this resolver created (metrics, tests)
        self.created = 0

    def resolve(self, identity: Identity) -> int:
        key = identity_key(identity)
        cached = self._remember(key)
        if cached is not None:
            return cached
        customer_id, _ = self._read(key)
        if customer_id is None:
            customer_id = self._lookup(identity)
            if customer_id is not None:
                self._store(key, customer_id)
        if customer_id is None:
            if not identity.create:
                raise IdentityNotFound(
                    f"DM Hub knows no customer with a {identity.type!r} identity like this one, "
                    "and the source does not allow creating one"
                )
            customer_id = self._create_once(key, identity)
        self._remember(key, customer_id)
        return customer_id

    def forget(self, identity: Identity) -> None:
        with self._lock:
            self._memory.pop(identity_key(identity), None)

    # -- caches -------------------------------------------------------------------------------

    def _remember(self, key: str, customer_id: int | None = None) -> int | None:
        with self._lock:
            if customer_id is None:
                found = self._memory.get(key)
                if found is not None:
                    self._memory.move_to_end(key)
                return found
            self._memory[key] = customer_id
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_entries:
                self._memory.popitem(last=False)
            return customer_id

    def _read(self, key: str) -> tuple[int | None, int | None]:
        """(customerId, leaseUntil ms) of the item, ignoring one past its TTL."""
        item = self.client.get_item(TableName=self.table, Key={KEY: {"S": key}}, ConsistentRead=True).get("Item")
        if not item:
            return None, None
        if TTL_ATTRIBUTE in item and int(item[TTL_ATTRIBUTE]["N"]) < self.clock():
            return None, None
        customer = int(item["customerId"]["N"]) if "customerId" in item else None
        lease_until = int(item["leaseUntil"]["N"]) if "leaseUntil" in item else None
        return customer, lease_until

    def _store(self, key: str, customer_id: int, lease: str | None = None) -> None:
        now = self.clock()
        params: dict[str, Any] = {
            "TableName": self.table,
            "Key": {KEY: {"S": key}},
            "UpdateExpression": "SET customerId = :cid, #ttl = :ttl, resolvedAt = :at REMOVE lease, leaseUntil",
            "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
            "ExpressionAttributeValues": {
                ":cid": {"N": str(customer_id)},
                ":ttl": {"N": str(int(now + self.ttl_seconds))},
                ":at": {"N": str(int(now))},
            },
        }
        if lease is not None:
            params["ConditionExpression"] = "lease = :lease"
            params["ExpressionAttributeValues"][":lease"] = {"S": lease}
        try:
            self.client.update_item(**params)
        except self.client.exceptions.ConditionalCheckFailedException:
            # our lease lapsed and another resolver took over; DM Hub's upsert is keyed by the
            # identity, so both got the same customer and the cache entry is theirs to write
            pass

    def _lookup(self, identity: Identity) -> int | None:
        records = self.dmhub.lookup_identity(identity.type, identity.value)
        return records[0].customer_id if records else None

    # -- creation under a lease ---------------------------------------------------------------

    def _take_lease(self, key: str) -> str | None:
        now = self.clock()
        lease = uuid.uuid4().hex
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                UpdateExpression="SET lease = :lease, leaseUntil = :until, #ttl = :ttl",
                ConditionExpression=(
                    "attribute_not_exists(#pk) OR #ttl < :now OR "
                    "(attribute_not_exists(customerId) AND "
                    "(attribute_not_exists(leaseUntil) OR leaseUntil < :nowms))"
                ),
                ExpressionAttributeNames={"#pk": KEY, "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":lease": {"S": lease},
                    ":until": {"N": str(int((now + self.lease_seconds) * 1000))},
                    ":ttl": {"N": str(int(now + self.ttl_seconds))},
                    ":now": {"N": str(int(now))},
                    ":nowms": {"N": str(int(now * 1000))},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return lease

    def _release(self, key: str, lease: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": key}},
                UpdateExpression="REMOVE lease, leaseUntil",
                ConditionExpression="lease = :lease",
                ExpressionAttributeValues={":lease": {"S": lease}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass

    def _create_once(self, key: str, identity: Identity) -> int:
        started = time.monotonic()
        wait = self.wait_seconds
        left = remaining_seconds()
        if left is not None:
            wait = min(wait, max(0.0, left))
        poll = _POLL_SECONDS
        while True:
            lease = self._take_lease(key)
            if lease is not None:
                try:
                    # the previous holder may have created it just before its lease lapsed
                    customer_id = self._lookup(identity)
                    if customer_id is None:
                        customer = self.dmhub.upsert_customer(
                            {"name": identity.name} if identity.name else {},
                            [
                                {
                                    "identityType": identity.type,
                                    "identityValue": identity.value,
                                    **({"identityName": identity.name} if identity.name else {}),
                                }
                            ],
                        )
                        customer_id = int(customer["id"])
                        with self._lock:
                            self.created += 1
                except BaseException:
                    self._release(key, lease)
                    raise
                self._store(key, customer_id, lease)
                return customer_id
            customer_id, lease_until_ms = self._read(key)
            if customer_id is not None:
                return customer_id
            if time.monotonic() - started >= wait:
                raise TransportError("timed out waiting for another instance to create the customer")
            pause = poll
            if lease_until_ms is not None:
                pause = min(pause, max(0.0, lease_until_ms / 1000 - self.clock()) + 0.01)
            self.sleep(pause)
            poll = min(poll * 1.5, _POLL_MAX_SECONDS)
