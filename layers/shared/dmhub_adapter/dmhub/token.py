"""The one DM Hub access token every sender instance shares.

DM Hub keeps a single valid token per app: fetching a new one invalidates the old. So the
token lives in one DynamoDB item (``pk = token#dmhub#{appId}``) that all containers read, and
only the holder of a refresh lease on that item fetches a new one.

Protocol (:meth:`SharedToken.get` / :meth:`SharedToken.renew`):

1. Use the in-memory copy while it is fresh (``expires - margin``); one thread per
   container does the rest, the others wait on a lock and reuse its result.
2. Read the item (consistent read). A fresh token that is not the one DM Hub just refused
   is used as is.
3. Otherwise take the lease with one conditional update that also checks the token is still
   the one we saw (``token = :seen``, or absent). A loser of that race did not see the
   newest state: it waits briefly and goes back to 2.
4. The winner fetches the token, then writes it and drops the lease in one update that
   is conditional on still holding the lease. A fetch that fails releases the lease.
5. A lease whose holder died lapses after ``lease_seconds``; the next caller takes it over.

So N concurrent callers with an expired token cause one fetch, and a token error triggers a
refresh only if the failing token is still the stored one.

A body error (a non-zero ``error_code`` that may or may not mean "bad token") goes through
:meth:`SharedToken.reconsider`: a newer stored token is used as is; otherwise the token is
refreshed, unless it was itself fetched on suspicion less than ``min_age_seconds`` ago — then
the token is not the problem and the caller reports the error as permanent. So across every
instance an app's token is refreshed on suspicion at most once per minimum age, and a
permission error (40201) no longer logs out every other user of the app on every attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dmhub_adapter.dmhub.client import TokenGrant
from dmhub_adapter.dmhub.errors import TokenError
from dmhub_adapter.store import TokenStore
from dmhub_adapter.store.lease import wait_for_holder
from dmhub_adapter.store.tokens import StoredToken

DEFAULT_MARGIN_SECONDS = 300
DEFAULT_WAIT_SECONDS = 20
DEFAULT_MIN_AGE_SECONDS = 60


class SharedToken:
    """A :class:`~dmhub_adapter.dmhub.client.TokenSource` shared by every sender instance
    through a :class:`~dmhub_adapter.store.TokenStore`.

    Example::

        token = SharedToken(store=TokenTable(table, aws.dynamodb(), app_id="app"), fetch=fetch_grant)
        access_token = token.get()
    """

    def __init__(
        self,
        *,
        store: TokenStore,
        fetch: Callable[[], TokenGrant],
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_fetch: Callable[[], None] | None = None,
        min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
    ) -> None:
        self.store = store
        #: a token fetched on suspicion is not refreshed again on suspicion before this age
        self.min_age = min_age_seconds
        self.fetch = fetch
        self.margin = margin_seconds
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.sleep = sleep
        #: called before every token fetch (metrics: fetches log out other users of the app)
        self.on_fetch = on_fetch
        self._memory: StoredToken | None = None
        self._lock = threading.Lock()

    # -- TokenSource --------------------------------------------------------------------------

    def get(self, *, deadline: float | None = None) -> str:
        """A fresh token: memory, else the table, else a coordinated fetch (step 1-5 above)."""
        memory = self._memory
        if memory is not None and memory.fresh(self.clock(), self.margin):
            return memory.token
        with self._lock:
            memory = self._memory
            if memory is not None and memory.fresh(self.clock(), self.margin):
                return memory.token
            return self._obtain(rejected=None, deadline=deadline)

    def renew(self, rejected: str, *, deadline: float | None = None) -> str:
        """A token other than ``rejected``; fetched only if ``rejected`` is still the stored one."""
        with self._lock:
            memory = self._memory
            # another thread of this container already replaced it
            if memory is not None and memory.token != rejected and memory.fresh(self.clock(), self.margin):
                return memory.token
            self._memory = None
            return self._obtain(rejected=rejected, deadline=deadline)

    def reconsider(self, rejected: str, *, deadline: float | None = None) -> str | None:
        """A token to retry with after DM Hub answered ``rejected`` with a body error, or None
        when the token is not the problem (it was fetched on suspicion less than the minimum
        age ago). A newer stored token is returned without a fetch."""
        with self._lock:
            now = self.clock()
            memory = self._memory
            if memory is not None and memory.token != rejected and memory.fresh(now, self.margin):
                return memory.token
            stored, _ = self.store.read()
            if stored is not None and stored.token != rejected and stored.fresh(now, self.margin):
                self._memory = stored
                return stored.token
            if (
                stored is not None
                and stored.token == rejected
                and stored.suspected
                and now - stored.fetched_at < self.min_age
            ):
                return None
            self._memory = None
            return self._obtain(rejected=rejected, deadline=deadline, suspected=True)

    def forget(self) -> None:
        """Drop the in-memory copy (the next call re-reads the table)."""
        self._memory = None

    # -- protocol -----------------------------------------------------------------------------

    def _obtain(self, rejected: str | None, deadline: float | None, suspected: bool = False) -> str:
        wait = self.wait_seconds
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))

        def attempt() -> tuple[str | None, int | None]:
            stored, lease_until_ms = self.store.read()
            now = self.clock()
            if stored is not None and stored.token != rejected and stored.fresh(now, self.margin):
                self._memory = stored
                return stored.token, None
            lease = self.store.take_lease(stored.token if stored is not None else None, now)
            if lease is not None:
                return self._refresh(lease, deadline, suspected), None
            return None, lease_until_ms

        return wait_for_holder(
            attempt,
            wait_seconds=wait,
            clock=self.clock,
            sleep=self.sleep,
            timed_out=lambda: TokenError("timed out waiting for another instance to refresh the DM Hub token"),
        )

    def _refresh(self, lease: str, deadline: float | None, suspected: bool = False) -> str:
        try:
            if self.on_fetch is not None:
                self.on_fetch()
            grant = self.fetch()
        except BaseException:
            self.store.release(lease)
            raise
        stored = StoredToken(
            token=grant.access_token, expires_at=grant.expires_at, fetched_at=grant.fetched_at, suspected=suspected
        )
        if not self.store.save(lease, stored):
            # our lease lapsed during the fetch and someone else took over: their token wins
            return self._obtain(rejected=stored.token, deadline=deadline)
        self._memory = stored
        return stored.token
