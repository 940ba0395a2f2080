"""The shared DM Hub token's item: ``pk = token#dmhub#{appId}``.

Attributes: ``token``, ``tokenExpiresAt`` and ``fetchedAt`` (epoch seconds), ``suspected``
(1 when the token was fetched because DM Hub refused its predecessor with a body error), the refresh
lease (``lease``, ``leaseUntil``) and ``expiresAt`` (TTL, a day after the token expires: it
only tidies up; freshness is judged on ``tokenExpiresAt``). The protocol that uses it is in
:mod:`dmhub_adapter.dmhub.token`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dmhub_adapter.records import record
from dmhub_adapter.store.lease import LEASE_UNTIL, TTL_ATTRIBUTE, LeaseTable, number, string

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def token_key(app_id: str) -> str:
    """The item key of ``app_id``'s shared token."""
    return f"token#dmhub#{app_id}"


@record(frozen=True)
class StoredToken:
    """A DM Hub access token with its lifetime (epoch seconds)."""

    token: str
    expires_at: float
    fetched_at: float
    #: fetched because a body error cast suspicion on the previous token (the minimum age
    #: before another such refresh applies to it)
    suspected: bool = False

    def fresh(self, now: float, margin: float) -> bool:
        """Usable at ``now`` with ``margin`` seconds to spare."""
        # a token that lives shorter than twice the margin would otherwise never be fresh
        lifetime = max(0.0, self.expires_at - self.fetched_at)
        return now < self.expires_at - min(margin, lifetime / 2)


class TokenTable:
    """:class:`~dmhub_adapter.store.TokenStore` on DynamoDB, for one app's token."""

    def __init__(self, table: str, client: DynamoDBClient, *, app_id: str, lease_seconds: float = 15) -> None:
        self.key = token_key(app_id)
        self.leases = LeaseTable(table, client)
        self.lease_seconds = lease_seconds

    def read(self) -> tuple[StoredToken | None, int | None]:
        """The stored token and the live lease's end (ms), each None when absent."""
        item = self.leases.get(self.key) or {}
        lease_until = item.get(LEASE_UNTIL)
        if "token" not in item:
            return None, lease_until
        return (
            StoredToken(
                token=str(item["token"]),
                expires_at=float(item["tokenExpiresAt"]),
                fetched_at=float(item.get("fetchedAt", 0)),
                suspected=bool(item.get("suspected", 0)),
            ),
            lease_until,
        )

    def take_lease(self, seen: str | None, now: float) -> str | None:
        """The refresh lease, if the stored token is still ``seen`` (or absent when None)."""
        if seen is None:
            available = "attribute_not_exists(#pk) OR attribute_not_exists(#token)"
            values = {}
        else:
            available = "#token = :seen"
            values = {":seen": string(seen)}
        taken = self.leases.take(
            self.key, available=available, now=now, seconds=self.lease_seconds,
            names={"#token": "token"}, values=values,
        )
        return taken if isinstance(taken, str) else None

    def save(self, lease: str, token: StoredToken) -> bool:
        """Store the fetched token and drop the lease; False when the lease was lost."""
        return self.leases.complete(
            self.key,
            lease,
            "SET #token = :token, tokenExpiresAt = :exp, fetchedAt = :at, suspected = :suspected, #ttl = :ttl",
            names={"#token": "token", "#ttl": TTL_ATTRIBUTE},
            values={
                ":token": string(token.token),
                ":exp": number(token.expires_at),
                ":at": number(token.fetched_at),
                ":suspected": number(1 if token.suspected else 0),
                ":ttl": number(token.expires_at + 86400),
            },
        )

    def release(self, lease: str) -> None:
        """Drop the lease after a failed fetch."""
        self.leases.release(self.key, lease)
