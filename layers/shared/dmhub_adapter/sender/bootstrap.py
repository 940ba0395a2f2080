"""The SenderFunction's composition root: the sender assembled from its settings, and the
function object its ``app.py`` wraps.

Wiring, all by constructor (nothing is set after construction)::

    DmhubClient (pool, timeouts, latency callback; with a DM Hub rate cap, a paced transport)
      └─ SharedToken(TokenTable, fetch = client.fetch_token with the current credentials)
           └─ client.with_token_source(token)  ──▶ Sender(dmhub, IdentityResolver(IdentityTable),
                                                        ClaimTable, DLQ url, RetryPolicy)

The DM Hub credentials come from Secrets Manager, so the runtime is built on the first batch
rather than at import: a secret not written yet leaves the batch to SQS (it is redelivered
after the fix) instead of failing every cold start.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dmhub_adapter import aws
from dmhub_adapter.dmhub.client import COLLECTOR_BATCH_MAX, DmhubClient, Timeouts, TokenGrant
from dmhub_adapter.dmhub.identity import IdentityResolver
from dmhub_adapter.dmhub.token import SharedToken
from dmhub_adapter.observability import MetricsSink, Telemetry, publish_outcome
from dmhub_adapter.secrets import load_credentials
from dmhub_adapter.sender.core import BatchStats, Sender
from dmhub_adapter.sender.pacing import pace_shortfall, paced_transport
from dmhub_adapter.sender.retry import RetryPolicy
from dmhub_adapter.settings import SenderSettings
from dmhub_adapter.store.claims import ClaimTable
from dmhub_adapter.store.identities import IdentityTable
from dmhub_adapter.store.tokens import TokenTable

_LATENCY_SAMPLES = 100


class SenderMetric(StrEnum):
    """The sender's metric names (per invocation)."""

    DELIVERED = "Delivered"
    RETRIED = "Retried"
    FAILED = "Failed"
    LEFT_FOR_REDELIVERY = "LeftForRedelivery"
    TOKEN_FETCHES = "TokenFetches"  # noqa: S105 - a metric name
    DMHUB_LATENCY = "DmhubLatency"
    #: batches larger than this instance's share of the DM Hub cap can start before the deadline
    BATCHES_OVER_CAP_SHARE = "BatchesOverCapShare"


class CallRecorder:
    """Collects DM Hub latencies and token fetches from the worker threads of a batch; drained
    into the invocation's :class:`MetricsSink` when the batch is done."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.token_fetches = 0
        self._lock = threading.Lock()

    def record_latency(self, _what: str, seconds: float) -> None:
        """One completed DM Hub exchange (the client's ``on_response``)."""
        with self._lock:
            if len(self.latencies_ms) < _LATENCY_SAMPLES:
                self.latencies_ms.append(seconds * 1000)

    def count_fetch(self) -> None:
        """One token fetch (the shared token's ``on_fetch``)."""
        with self._lock:
            self.token_fetches += 1

    def drain_into(self, sink: MetricsSink) -> None:
        """Report and forget what was collected."""
        with self._lock:
            latencies, fetches = self.latencies_ms, self.token_fetches
            self.latencies_ms, self.token_fetches = [], 0
        sink.count(SenderMetric.TOKEN_FETCHES, fetches)
        for value in latencies:
            sink.timing(SenderMetric.DMHUB_LATENCY, value)


@dataclass
class SenderRuntime:
    """Everything a warm container reuses across invocations."""

    sender: Sender
    dmhub: DmhubClient
    token: SharedToken
    recorder: CallRecorder = field(default_factory=CallRecorder)

    def close(self) -> None:
        """Stop the sender's thread pool and close the DM Hub connection pool."""
        self.sender.close()
        self.dmhub.close()


def build_sender(settings: SenderSettings, *, logger: Any = None) -> SenderRuntime:
    """Assemble the sender; reads the DM Hub credentials (raises when they are missing)."""
    secret_name = settings.dmhub_secret_name
    credentials = load_credentials(secret_name)
    recorder = CallRecorder()
    rate = settings.dmhub_rate_per_instance
    http = DmhubClient(
        settings.dmhub_base_url,
        api=settings.dmhub_api,
        timeouts=Timeouts(connect=settings.dmhub_connect_timeout, read=settings.dmhub_read_timeout),
        on_response=recorder.record_latency,
        # the fleet-wide cap, this instance's share (DMHUB_MAX_REQUESTS_PER_SECOND)
        transport=None if rate is None else paced_transport(rate),
    )

    def fetch() -> TokenGrant:
        # re-read (cached) so a rotated secret is picked up without a cold start
        current = load_credentials(secret_name)
        return http.fetch_token(current.app_id, current.secret)

    dynamodb = aws.dynamodb()
    token = SharedToken(
        store=TokenTable(settings.idempotency_table, dynamodb, app_id=credentials.app_id),
        fetch=fetch,
        on_fetch=recorder.count_fetch,
        min_age_seconds=settings.token_min_age_seconds,
    )
    dmhub = http.with_token_source(token)
    sender = Sender(
        dmhub=dmhub,
        resolver=IdentityResolver(dmhub, store=IdentityTable(settings.idempotency_table, dynamodb)),
        claims=ClaimTable(settings.idempotency_table, dynamodb),
        dead_letter_queue_url=settings.dead_letter_queue_url,
        sqs=aws.sqs(),
        policy=RetryPolicy(max_attempts=settings.max_attempts, safety_margin=settings.safety_margin_seconds),
        concurrency=settings.concurrency,
        logger=logger,
        attribute_budget=settings.attribute_budget,
        api=settings.dmhub_api,
        endpoint=settings.event_endpoint,
    )
    return SenderRuntime(sender=sender, dmhub=dmhub, token=token, recorder=recorder)


class SenderFunction:
    """The SenderFunction's handler logic: one SQS event in, a partial batch response out.

    Example (``functions/sender/app.py``)::

        function = SenderFunction(SenderSettings.from_env(), telemetry)
        lambda_handler = telemetry.wrap(function.handle)
    """

    def __init__(self, settings: SenderSettings, telemetry: Telemetry) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self._runtime: SenderRuntime | None = None
        self._lock = threading.Lock()

    def runtime(self) -> SenderRuntime:
        """The container's sender, built on first use."""
        with self._lock:
            if self._runtime is None:
                self._runtime = build_sender(self.settings, logger=self.telemetry.logger)
            return self._runtime

    def reset(self) -> None:
        """Forget the container's sender (the next batch builds it again)."""
        with self._lock:
            if self._runtime is not None:
                self._runtime.close()
            self._runtime = None

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Deliver an SQS batch; records that should be retried are reported as failures."""
        logger = self.telemetry.logger
        sink = self.telemetry.sink()
        records = event.get("Records") or []
        try:
            current = self.runtime()
        except Exception as exc:  # no credentials / config yet: SQS keeps the messages
            logger.error("sender not ready; batch left for redelivery", extra={"error": f"{type(exc).__name__}: {exc}"})
            sink.count(SenderMetric.LEFT_FOR_REDELIVERY, len(records))
            publish_outcome(BatchStats(records=len(records), left_for_retry=len(records),
                                       reasons=[f"sender not ready: {type(exc).__name__}"]))
            return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
        share = self.settings.dmhub_rate_per_instance
        if share is not None:
            self._check_pace(len(records), share, current.sender, context, sink)
        response, stats = current.sender.process_batch(event, context)
        publish(sink, stats)
        publish_outcome(stats)
        current.recorder.drain_into(sink)
        logger.info(
            "batch done",
            extra={
                "records": len(records),
                "delivered": stats.delivered,
                "dead_lettered": stats.dead_lettered,
                "left_for_retry": stats.left_for_retry,
                "retried": stats.retried,
            },
        )
        return response

    def _check_pace(self, records: int, share: float, sender: Sender, context: Any, sink: MetricsSink) -> None:
        """Warn (and count) when the batch needs more DM Hub requests than the instance's share
        of the cap can start before the deadline: its tail will go back to SQS, and repeated
        receives end in the dead-letter queue (the fix is a smaller ``SenderBatchSize``)."""
        seconds = sender.deadline_of(context) - time.monotonic()
        per_request = COLLECTOR_BATCH_MAX if sender.collector else 1
        shortfall = pace_shortfall(records, share, seconds, events_per_request=per_request)
        if shortfall is None:
            return
        sink.count(SenderMetric.BATCHES_OVER_CAP_SHARE, 1)
        self.telemetry.logger.warning(
            "batch larger than this instance's share of the DM Hub cap can start before the deadline; "
            "lower SenderBatchSize",
            extra={
                "records": shortfall.records,
                "requests_needed": shortfall.requests_needed,
                "requests_possible": shortfall.requests_possible,
                "share_per_second": round(shortfall.share_per_second, 3),
                "seconds": round(shortfall.seconds, 1),
            },
        )


def publish(sink: MetricsSink, stats: BatchStats) -> None:
    """Report a batch's counts."""
    sink.count(SenderMetric.DELIVERED, stats.delivered)
    sink.count(SenderMetric.RETRIED, stats.retried)
    sink.count(SenderMetric.FAILED, stats.dead_lettered)
    sink.count(SenderMetric.LEFT_FOR_REDELIVERY, stats.left_for_retry)
