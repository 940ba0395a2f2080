"""Pace the requests one sender instance makes to DM Hub, so the fleet stays under a cap.

The stack's cap (``DMHUB_MAX_REQUESTS_PER_SECOND``) is shared out evenly: the event source
runs at most ``SENDER_MAX_INSTANCES`` instances (its ``ScalingConfig.MaximumConcurrency``), and
each spaces its request starts ``instances / cap`` seconds apart (a little more, see
``HEADROOM``), whatever its thread count. So in any one-second window the fleet starts at most
``cap`` requests (see :class:`Pacer`).

``HEADROOM``: requests reach DM Hub with some jitter (network, scheduling), which can bunch
starts that left evenly spaced; paced at exactly its share, a fleet measured 104 requests in
the busiest second at a cap of 100 (``bench/rate_cap.py``). Each instance therefore paces at 95 %
of its share: a late request then at most fills the slot the margin left free.

An instance's share bounds what one invocation can deliver: at ``s`` requests per second and
``t`` seconds before its deadline, about ``s x t`` events (customerevents, v2). A larger SQS batch
leaves its tail to SQS, where each receive counts toward the dead-letter queue; the sender logs
such a batch (:func:`pace_shortfall`) so the batch size can be lowered.

A 429 still reaches the sender as :class:`~dmhub_adapter.dmhub.errors.RateLimited` (its retry
waits ``Retry-After``), and it also holds the instance's pacer for that long, so the other
threads of the batch do not keep knocking meanwhile.

The pacer sits in the HTTP transport (:class:`PacedTransport`), under every DM Hub call
(token, identity lookups, customer upserts, events) without the client knowing. A wait longer
than the request's pool timeout (which the client bounds by the invocation's deadline) fails
the call as ``httpx.PoolTimeout``, a retryable transport error, instead of outliving it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import httpx

from dmhub_adapter.records import record

#: the longest hold a 429 without a usable Retry-After puts on the pacer
DEFAULT_HOLD_SECONDS = 1.0
#: share of its part of the cap an instance uses; the rest absorbs arrival jitter
HEADROOM = 0.95


class PacerTimeout(Exception):
    """The next free slot is further away than the caller may wait."""


class Pacer:
    """Spaces starts ``1 / rate`` seconds apart across threads (a token bucket of depth one).

    Slots are reserved in order under a lock and waited for outside it. With the slots
    ``1 / rate`` apart, a half-open window of one second holds at most ``ceil(rate)`` starts.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self, max_wait: float | None = None) -> float:
        """Wait for the next slot and take it; returns the seconds waited.

        Raises :class:`PacerTimeout` (taking no slot) when the slot is more than ``max_wait``
        seconds away."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            wait = slot - now
            if max_wait is not None and wait > max_wait:
                raise PacerTimeout(f"next DM Hub request slot is {wait:.2f} s away (may wait {max_wait:.2f} s)")
            self._next = slot + self.interval
        if wait > 0:
            self._sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """Start nothing for ``seconds`` from now (DM Hub answered 429 with ``Retry-After``)."""
        with self._lock:
            self._next = max(self._next, self._clock() + max(0.0, seconds))


def per_instance_rate(cap: float, instances: int) -> float:
    """The share of ``cap`` (requests per second, fleet-wide) one of ``instances`` may use."""
    if cap <= 0 or instances < 1:
        raise ValueError(f"need a positive cap and at least one instance, got {cap} and {instances}")
    return cap / instances


def starts_within(share: float, seconds: float, *, headroom: float = HEADROOM) -> int:
    """How many requests an instance paced at ``share x headroom`` per second can start in
    ``seconds`` (the first starts at once, then one per interval)."""
    if seconds < 0:
        return 0
    return 1 + math.floor(seconds * share * headroom)


@record(frozen=True)
class PaceShortfall:
    """A batch that needs more DM Hub requests than this instance's share of the cap can start
    before the invocation's deadline: the records it cannot start go back to SQS, and each such
    receive counts toward ``maxReceiveCount`` (then the dead-letter queue)."""

    records: int
    requests_needed: int
    requests_possible: int
    share_per_second: float
    seconds: float


def pace_shortfall(
    records: int, share: float, seconds: float, *, events_per_request: int = 1
) -> PaceShortfall | None:
    """The shortfall of a batch of ``records`` (at least one request per
    ``events_per_request`` records: 1 for customerevents and v2, 100 for the collector) at this
    instance's ``share`` of the cap with ``seconds`` left; None when the pace can carry it.

    Example::

        pace_shortfall(50, share=1.0, seconds=29.0)  # 50 needed, 28 possible: a shortfall
    """
    needed = -(-records // max(1, events_per_request))
    possible = starts_within(share, seconds)
    if needed <= possible:
        return None
    return PaceShortfall(records, needed, possible, share, seconds)


def _retry_after(value: str | None) -> float:
    from dmhub_adapter.dmhub.client import _retry_after as parse

    seconds = parse(value)
    return DEFAULT_HOLD_SECONDS if seconds is None else seconds


class PacedTransport(httpx.BaseTransport):
    """An httpx transport that takes a :class:`Pacer` slot before each request and holds the
    pacer on a 429 for its ``Retry-After``."""

    def __init__(self, pacer: Pacer, inner: httpx.BaseTransport) -> None:
        self.pacer = pacer
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Wait for a slot (at most the request's pool timeout), then send."""
        timeouts = request.extensions.get("timeout") or {}
        max_wait = timeouts.get("pool")
        try:
            self.pacer.acquire(max_wait)
        except PacerTimeout as exc:
            raise httpx.PoolTimeout(str(exc), request=request) from None
        response = self.inner.handle_request(request)
        if response.status_code == 429:
            self.pacer.hold(_retry_after(response.headers.get("retry-after")))
        return response

    def close(self) -> None:
        """Close the wrapped transport (its connection pool)."""
        self.inner.close()


def paced_transport(share: float, *, max_connections: int = 32, headroom: float = HEADROOM) -> PacedTransport:
    """A pooled HTTP transport whose request starts are paced at ``share x headroom`` per second
    (``share``: this instance's part of the fleet's cap)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return PacedTransport(Pacer(share * headroom), httpx.HTTPTransport(limits=limits))
