"""Platform identity → DM Hub ``customerId``.

DM Hub does not check that a ``customerId`` exists, so events carry the platform identity
(WeChat openid, Taobao open uid …) and the sender resolves it here:

1. in-memory cache (per container, bounded), then the
   :class:`~dmhub_adapter.store.IdentityStore` item ``identity#{type}#{value}``;
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
from collections import OrderedDict
from collections.abc import Callable

from dmhub_adapter.dmhub.client import DmhubClient
from dmhub_adapter.dmhub.errors import IdentityNotFound, TransportError
from dmhub_adapter.model.wire import IdentityRef
from dmhub_adapter.store import IdentityStore
from dmhub_adapter.store.identities import identity_key as _item_key
from dmhub_adapter.store.lease import wait_for_holder

DEFAULT_WAIT_SECONDS = 20
MEMORY_ENTRIES = 10_000


def identity_key(identity: IdentityRef) -> str:
    """The cache item key of ``identity``."""
    return _item_key(identity.type, identity.value)


class IdentityResolver:
    """Resolves platform identities to DM Hub customer ids, creating a customer at most once.

    Example::

        resolver = IdentityResolver(dmhub, store=IdentityTable(table, aws.dynamodb()))
        customer_id = resolver.resolve(WireIdentity(type="wechat", value=openid), deadline=deadline)
    """

    def __init__(
        self,
        dmhub: DmhubClient,
        *,
        store: IdentityStore,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        memory_entries: int = MEMORY_ENTRIES,
    ) -> None:
        self.dmhub = dmhub
        self.store = store
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.sleep = sleep
        self.memory_entries = memory_entries
        self._memory: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        #: number of customers this resolver created (metrics, tests)
        self.created = 0

    def resolve(self, identity: IdentityRef, *, deadline: float | None = None) -> int:
        """The customer id of ``identity``; raises :class:`IdentityNotFound` when it is unknown
        and may not be created, a transport error when DM Hub fails."""
        key = identity_key(identity)
        cached = self._remember(key)
        if cached is not None:
            return cached
        customer_id, _ = self.store.read(key)
        if customer_id is None:
            customer_id = self._lookup(identity, deadline)
            if customer_id is not None:
                self.store.save(key, customer_id)
        if customer_id is None:
            if not identity.create:
                raise IdentityNotFound(
                    f"DM Hub knows no customer with a {identity.type!r} identity like this one, "
                    "and the source does not allow creating one"
                )
            customer_id = self._create_once(key, identity, deadline)
        self._remember(key, customer_id)
        return customer_id

    def forget(self, identity: IdentityRef) -> None:
        """Drop ``identity`` from the in-memory cache (the next resolve reads the table)."""
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

    def _lookup(self, identity: IdentityRef, deadline: float | None) -> int | None:
        records = self.dmhub.lookup_identity(identity.type, identity.value, deadline=deadline)
        return records[0].customer_id if records else None

    # -- creation under a lease ---------------------------------------------------------------

    def _create_once(self, key: str, identity: IdentityRef, deadline: float | None) -> int:
        wait = self.wait_seconds
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))

        def attempt() -> tuple[int | None, int | None]:
            lease = self.store.take_lease(key)
            if lease is not None:
                return self._create(key, identity, lease, deadline), None
            return self.store.read(key)

        return wait_for_holder(
            attempt,
            wait_seconds=wait,
            clock=self.clock,
            sleep=self.sleep,
            timed_out=lambda: TransportError("timed out waiting for another instance to create the customer"),
        )

    def _create(self, key: str, identity: IdentityRef, lease: str, deadline: float | None) -> int:
        try:
            # the previous holder may have created it just before its lease lapsed
            customer_id = self._lookup(identity, deadline)
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
                    deadline=deadline,
                )
                customer_id = int(customer["id"])
                with self._lock:
                    self.created += 1
        except BaseException:
            self.store.release(key, lease)
            raise
        self.store.save(key, customer_id, lease)
        return customer_id
