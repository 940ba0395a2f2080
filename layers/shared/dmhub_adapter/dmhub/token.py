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
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dmhub_adapter.dmhub.client import TokenGrant, remaining_seconds
from dmhub_adapter.dmhub.errors import CredentialsError, TokenError
from dmhub_adapter.store.claims import KEY, TTL_ATTRIBUTE

DEFAULT_MARGIN_SECONDS = 300
DEFAULT_LEASE_SECONDS = 15
DEFAULT_WAIT_SECONDS = 20
_POLL_SECONDS = 0.05
_POLL_MAX_SECONDS = 0.4


def token_key(app_id: str) -> str:
    return f"token#dmhub#{app_id}"


@dataclass(frozen=True)
class StoredToken:
    token: str
    #: epoch seconds
    expires_at: float
    fetched_at: float

    def fresh(self, now: float, margin: float) -> bool:
        # a token that lives shorter than twice the margin would otherwise never be fresh
        lifetime = max(0.0, self.expires_at - self.fetched_at)
        return now < self.expires_at - min(margin, lifetime / 2)


@dataclass(frozen=True)
class DmhubCredentials:
    app_id: str
    secret: str

    def __repr__(self) -> str:
        return f"DmhubCredentials(app_id={self.app_id!r}, secret='***')"


class SharedToken:
    """A :class:`~dmhub_adapter.dmhub.client.TokenSource` backed by the DynamoDB table."""

    def __init__(
        self,
        *,
        table: str,
        app_id: str,
        fetch: Callable[[], TokenGrant],
        client: Any | None = None,
        margin_seconds: float = DEFAULT_MARGIN_SECONDS,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_fetch: Callable[[], None] | None = None,
    ) -> None:
        if client is None:
            from dmhub_adapter import aws

            client = aws.client("dynamodb")
        self.table = table
        self.key = token_key(app_id)
        self.fetch = fetch
        self.client = client
        self.margin = margin_seconds
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.sleep = sleep
        self.on_fetch = on_fetch
        self._memory: StoredToken | None = None
        self._lock = threading.Lock()

    # -- TokenSource --------------------------------------------------------------------------

    def get(self) -> str:
        memory = self._memory
        if memory is not None and memory.fresh(self.clock(), self.margin):
            return memory.token
        with self._lock:
            memory = self._memory
            if memory is not None and memory.fresh(self.clock(), self.margin):
                return memory.token
            return self._obtain(rejected=None)

    def renew(self, rejected: str) -> str:
        with self._lock:
            memory = self._memory
            # another thread of this container already replaced it
            if memory is not None and memory.token != rejected and memory.fresh(self.clock(), self.margin):
                return memory.token
            self._memory = None
            return self._obtain(rejected=rejected)

    def forget(self) -> None:
        """Drop the in-memory copy (the next call re-reads the table)."""
        self._memory = None

    # -- protocol -----------------------------------------------------------------------------

    def _obtain(self, rejected: str | None) -> str:
        started = time.monotonic()
        wait = self.wait_seconds
        left = remaining_seconds()
        if left is not None:
            wait = min(wait, max(0.0, left))
        poll = _POLL_SECONDS
        while True:
            stored, lease_until_ms = self._read()
            now = self.clock()
            if stored is not None and stored.token != rejected and stored.fresh(now, self.margin):
                self._memory = stored
                return stored.token
            lease = self._take_lease(stored.token if stored is not None else None, now)
            if lease is not None:
                return self._refresh(lease)
            if time.monotonic() - started >= wait:
                raise TokenError("timed out waiting for another instance to refresh the DM Hub token")
            # sleep no longer than the current holder's lease, so a dead holder is taken over soon
            pause = poll
            if lease_until_ms is not None:
                pause = min(pause, max(0.0, lease_until_ms / 1000 - now) + 0.01)
            self.sleep(pause)
            poll = min(poll * 1.5, _POLL_MAX_SECONDS)

    def _read(self) -> tuple[StoredToken | None, int | None]:
        response = self.client.get_item(TableName=self.table, Key={KEY: {"S": self.key}}, ConsistentRead=True)
        item = response.get("Item") or {}
        lease_until = int(item["leaseUntil"]["N"]) if "leaseUntil" in item else None
        if "token" not in item:
            return None, lease_until
        return (
            StoredToken(
                token=item["token"]["S"],
                expires_at=float(item["tokenExpiresAt"]["N"]),
                fetched_at=float(item.get("fetchedAt", {}).get("N", "0")),
            ),
            lease_until,
        )

    def _take_lease(self, seen: str | None, now: float) -> str | None:
        lease = uuid.uuid4().hex
        names = {"#token": "token", "#leaseUntil": "leaseUntil", "#pk": KEY}
        values: dict[str, Any] = {
            ":lease": {"S": lease},
            ":until": {"N": str(int((now + self.lease_seconds) * 1000))},
            ":nowms": {"N": str(int(now * 1000))},
        }
        if seen is None:
            unchanged = "attribute_not_exists(#token)"
        else:
            unchanged = "#token = :seen"
            values[":seen"] = {"S": seen}
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": self.key}},
                UpdateExpression="SET lease = :lease, #leaseUntil = :until",
                ConditionExpression=(
                    f"(attribute_not_exists(#pk) OR {unchanged}) "
                    "AND (attribute_not_exists(#leaseUntil) OR #leaseUntil < :nowms)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return lease

    def _refresh(self, lease: str) -> str:
        try:
            if self.on_fetch is not None:
                self.on_fetch()
            grant = self.fetch()
        except BaseException:
            self._release(lease)
            raise
        stored = StoredToken(token=grant.access_token, expires_at=grant.expires_at, fetched_at=grant.fetched_at)
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": self.key}},
                UpdateExpression=(
                    "SET #token = :token, tokenExpiresAt = :exp, fetchedAt = :at, #ttl = :ttl "
                    "REMOVE lease, leaseUntil"
                ),
                ConditionExpression="lease = :lease",
                ExpressionAttributeNames={"#token": "token", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":token": {"S": stored.token},
                    ":exp": {"N": str(int(stored.expires_at))},
                    ":at": {"N": str(int(stored.fetched_at))},
                    # TTL only tidies up; freshness is judged on tokenExpiresAt
                    ":ttl": {"N": str(int(stored.expires_at) + 86400)},
                    ":lease": {"S": lease},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            # our lease lapsed during the fetch and someone else took over: their token wins
            return self._obtain(rejected=stored.token)
        self._memory = stored
        return stored.token

    def _release(self, lease: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY: {"S": self.key}},
                UpdateExpression="REMOVE lease, leaseUntil",
                ConditionExpression="lease = :lease",
                ExpressionAttributeValues={":lease": {"S": lease}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass


# -- credentials --------------------------------------------------------------------------------

_credentials_cache: dict[str, tuple[float, DmhubCredentials]] = {}
_credentials_lock = threading.Lock()
CREDENTIALS_MAX_AGE = 300.0


def credentials_from_secret(text: str, name: str) -> DmhubCredentials:
    try:
        data = json.loads(text)
    except ValueError:
        raise CredentialsError(f"secret {name} is not JSON") from None
    if not isinstance(data, dict) or not data.get("appId") or not data.get("secret"):
        raise CredentialsError(f'secret {name} must be {{"appId": "...", "secret": "..."}}')
    return DmhubCredentials(app_id=str(data["appId"]), secret=str(data["secret"]))


def load_credentials(
    secret_name: str,
    *,
    client: Any | None = None,
    max_age: float = CREDENTIALS_MAX_AGE,
    use_env: bool = False,
) -> DmhubCredentials:
    """DM Hub app credentials from Secrets Manager (cached ``max_age`` seconds per container).

    With ``use_env`` the variables ``DMHUB_APP_ID`` and ``DMHUB_SECRET`` win when both are set
    (command-line use against a DM Hub whose secret is not in AWS).
    """
    if use_env:
        app_id, secret = os.environ.get("DMHUB_APP_ID"), os.environ.get("DMHUB_SECRET")
        if app_id and secret:
            return DmhubCredentials(app_id=app_id, secret=secret)
    now = time.monotonic()
    with _credentials_lock:
        cached = _credentials_cache.get(secret_name)
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
    if client is None:
        from dmhub_adapter import aws

        client = aws.client("secretsmanager")
    try:
        response = client.get_secret_value(SecretId=secret_name)
    except client.exceptions.ResourceNotFoundException:
        raise CredentialsError(f"secret {secret_name} does not exist") from None
    credentials = credentials_from_secret(response.get("SecretString") or "", secret_name)
    with _credentials_lock:
        _credentials_cache[secret_name] = (now, credentials)
    return credentials


def clear_credentials_cache() -> None:
    with _credentials_lock:
        _credentials_cache.clear()
