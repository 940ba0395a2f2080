"""Signature bindings: the first body a signed (timestamp, nonce, signature) arrived with.

WeChat's signatures cover the token, timestamp and nonce but not the body in plaintext mode,
and nothing ties a captured signature to one request in any mode. A binding is one item on
the idempotency table, ``pk = sig#{source}#{account}#{digest of the signed values}``, holding
the sha256 of the body it first came with and ``expiresAt`` (DynamoDB TTL, also compared in
the condition since TTL deletion is lazy). One conditional put decides, across every Lambda
instance: the same body again is a redelivery (bound), another body is a forgery (refused).
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any, Protocol

KEY = "pk"
TTL_ATTRIBUTE = "expiresAt"
DIGEST_ATTRIBUTE = "bodyDigest"


def binding_key(source: str, account: str, *signed: str) -> str:
    """``sig#{source}#{account}#{sha256 of the signed values joined by '|'}``.

    The values are hashed, so a caller-chosen account or nonce cannot make the key long."""
    digest = hashlib.sha256("|".join(signed).encode("utf-8")).hexdigest()
    return f"sig#{source}#{account}#{digest}"


def body_digest(body: bytes) -> str:
    """The sha256 (hex) a binding stores for a body."""
    return hashlib.sha256(body).hexdigest()


class Binder(Protocol):
    """What the WeChat adapter needs: one atomic bind."""

    def bind(self, key: str, body_digest: str, expires_at: int) -> bool:
        """True when ``key`` is now (or already was) bound to ``body_digest``; False otherwise."""
        ...


class SignatureBinding:
    """Bindings on the idempotency table through one conditional ``PutItem`` each."""

    def __init__(self, client: Any, table: str, *, clock: Any = None) -> None:
        self.client = client
        self.table = table
        self._clock = clock or time.time

    def bind(self, key: str, body_digest: str, expires_at: int) -> bool:
        """Bind ``key`` to ``body_digest`` until ``expires_at`` (epoch seconds).

        Succeeds when the key is free, expired, or already bound to the same digest (a
        redelivery); returns False when another digest holds it. AWS errors propagate."""
        now = int(self._clock())
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    KEY: {"S": key},
                    DIGEST_ATTRIBUTE: {"S": body_digest},
                    TTL_ATTRIBUTE: {"N": str(int(expires_at))},
                },
                ConditionExpression="attribute_not_exists(#pk) OR #exp < :now OR #digest = :digest",
                ExpressionAttributeNames={"#pk": KEY, "#exp": TTL_ATTRIBUTE, "#digest": DIGEST_ATTRIBUTE},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":digest": {"S": body_digest}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


class MemoryBinding:
    """Bindings in this process only: for dry runs and unit tests, where no table exists.

    Never what a deployed ingest uses: there ``IDEMPOTENCY_TABLE`` is always set (without it
    nothing could be claimed or enqueued either)."""

    def __init__(self, clock: Any = None) -> None:
        self._items: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._clock = clock or time.time

    def bind(self, key: str, body_digest: str, expires_at: int) -> bool:
        """Same contract as :meth:`SignatureBinding.bind`."""
        now = int(self._clock())
        with self._lock:
            held = self._items.get(key)
            if held is not None and held[1] >= now and held[0] != body_digest:
                return False
            self._items[key] = (body_digest, int(expires_at))
            return True
