"""The DynamoDB data-access layer: every item of the one table, and the interfaces the
ingest and the sender depend on.

One table (``IDEMPOTENCY_TABLE``), partition key ``pk`` (string), TTL attribute
``expiresAt`` (epoch seconds; DynamoDB deletes lazily, so every condition compares it too)::

    pk                                   item                  written by        module
    ───────────────────────────────────  ────────────────────  ────────────────  ──────────────
    {source}#{account}#{externalId}      idempotency claim     ingest, sender    claims.py
                                         status PENDING → QUEUED → DELIVERED | FAILED,
                                         lease, leaseUntil (ms), messageId, dmhubId, reason
    token#dmhub#{appId}                  shared DM Hub token   sender            tokens.py
                                         token, tokenExpiresAt, fetchedAt, lease, leaseUntil
    identity#{type}#{value}              identity → customer   sender            identities.py
                                         customerId, resolvedAt, lease, leaseUntil

Source names ``token`` and ``identity`` are reserved (see ``mapping.config``), so a claim key
can never collide with the other two prefixes. The ingest's IAM policy denies it the
``token#*`` and ``identity#*`` keys.

All three items share one primitive, :class:`~dmhub_adapter.store.lease.LeaseTable`: a
conditional write that takes a lease (``lease`` token + ``leaseUntil``) when the item is
available and no live lease is held, a release that is conditional on still holding it, and a
completion that writes the result and drops the lease in one conditional update. A holder
that dies loses nothing: its lease lapses and the next caller takes over.

The interfaces the rest of the runtime sees are the Protocols below; the DynamoDB classes
implement them, and unit tests may pass in-memory doubles.
"""

from __future__ import annotations

from typing import Protocol

from dmhub_adapter.store.claims import Claim, ClaimStatus
from dmhub_adapter.store.tokens import StoredToken


class ClaimStore(Protocol):
    """Idempotency claims: the ingest claims and marks QUEUED, the sender marks the outcome."""

    def claim(self, key: str, *, trace_id: str | None = None, lease_seconds: float | None = None) -> Claim:
        """Take ``key`` for a lease, or report the existing item's status."""
        ...

    def mark_queued(self, key: str, lease: str, message_id: str | None) -> bool:
        """PENDING → QUEUED while still holding ``lease``; False when it was taken over."""
        ...

    def release(self, key: str, lease: str) -> bool:
        """Give the claim back after a failed enqueue, so the platform's retry can take it."""
        ...

    def mark_delivered(self, key: str, dmhub_id: int | str | None) -> None:
        """Record the delivery and DM Hub's event id."""
        ...

    def mark_failed(self, key: str, reason: str) -> None:
        """Record a permanent failure (never over a DELIVERED item)."""
        ...


class TokenStore(Protocol):
    """The one stored DM Hub token of an app, and the lease that lets one instance refresh it."""

    def read(self) -> tuple[StoredToken | None, int | None]:
        """The stored token (None when there is none) and the live lease's end in ms, if any."""
        ...

    def take_lease(self, seen: str | None, now: float) -> str | None:
        """A lease if the token is still ``seen`` and no other lease is live; else None."""
        ...

    def save(self, lease: str, token: StoredToken) -> bool:
        """Store ``token`` and drop ``lease``; False when the lease was lost meanwhile."""
        ...

    def release(self, lease: str) -> None:
        """Drop ``lease`` without storing a token (the fetch failed)."""
        ...


class IdentityStore(Protocol):
    """The cache of platform identity → DM Hub customer id, with a creation lease."""

    def read(self, key: str) -> tuple[int | None, int | None]:
        """(customerId, live lease's end in ms) of the cached item, ignoring an expired one."""
        ...

    def save(self, key: str, customer_id: int, lease: str | None = None) -> None:
        """Cache ``customer_id`` (dropping ``lease`` when given and still held)."""
        ...

    def take_lease(self, key: str) -> str | None:
        """A creation lease when nothing is cached and no other lease is live; else None."""
        ...

    def release(self, key: str, lease: str) -> None:
        """Drop a creation lease after a failed creation."""
        ...


__all__ = ["Claim", "ClaimStatus", "ClaimStore", "IdentityStore", "StoredToken", "TokenStore"]
