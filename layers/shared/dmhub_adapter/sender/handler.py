"""SenderFunction wiring: clients built once per container, Powertools logging and metrics.

Environment (beyond the brief's ``IDEMPOTENCY_TABLE``, ``DEAD_LETTER_QUEUE_URL``,
``DMHUB_BASE_URL``, ``SECRETS_PREFIX``), all optional:

=============================  =======  ==============================================
``DMHUB_CONNECT_TIMEOUT``      2        seconds to connect to DM Hub
``DMHUB_READ_TIMEOUT``         5        seconds to wait for DM Hub's answer
``SENDER_CONCURRENCY``         10       records of a batch sent at the same time
``SENDER_MAX_ATTEMPTS``        6        attempts per record and invocation
``SENDER_SAFETY_MARGIN_MS``    1000     time kept free before the Lambda timeout
=============================  =======  ==============================================
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dmhub_adapter.dmhub.client import DmhubClient, Timeouts
from dmhub_adapter.dmhub.identity import IdentityResolver
from dmhub_adapter.dmhub.token import SharedToken, load_credentials
from dmhub_adapter.sender.core import DEFAULT_CONCURRENCY, BatchStats, Sender
from dmhub_adapter.sender.retry import RetryPolicy
from dmhub_adapter.settings import Settings
from dmhub_adapter.store.claims import ClaimStore

_LATENCY_SAMPLES = 100


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise RuntimeError(f"environment variable {name} must be a number, got {raw!r}") from None


@dataclass
class Runtime:
    """Everything a warm container reuses across invocations."""

    sender: Sender
    dmhub: DmhubClient
    token: SharedToken
    latencies_ms: list[float] = field(default_factory=list)
    token_fetches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_latency(self, _what: str, seconds: float) -> None:
        with self._lock:
            if len(self.latencies_ms) < _LATENCY_SAMPLES:
                self.latencies_ms.append(seconds * 1000)

    def count_fetch(self) -> None:
        with self._lock:
            self.token_fetches += 1

    def drain(self) -> tuple[list[float], int]:
        with self._lock:
            latencies, fetches = self.latencies_ms, self.token_fetches
            self.latencies_ms, self.token_fetches = [], 0
        return latencies, fetches


def build_runtime(settings: Settings | None = None, *, logger: Any = None) -> Runtime:
    settings = settings or Settings.from_env()
    table = settings.require("idempotency_table")
    dlq = settings.require("dead_letter_queue_url")
    secret_name = settings.secret_name("dmhub")
    credentials = load_credentials(secret_name)
    dmhub = DmhubClient(
        settings.dmhub_base_url,
        timeouts=Timeouts(
            connect=_float("DMHUB_CONNECT_TIMEOUT", 2.0),
            read=_float("DMHUB_READ_TIMEOUT", 5.0),
        ),
    )

    def fetch() -> Any:
        # re-read (cached) so a rotated secret is picked up without a cold start
        current = load_credentials(secret_name)
        return dmhub.fetch_token(current.app_id, current.secret)

    token = SharedToken(table=table, app_id=credentials.app_id, fetch=fetch)
    dmhub.token_source = token
    sender = Sender(
        dmhub=dmhub,
        resolver=IdentityResolver(dmhub, table=table),
        claims=ClaimStore(table),
        dead_letter_queue_url=dlq,
        policy=RetryPolicy(
            max_attempts=int(_float("SENDER_MAX_ATTEMPTS", 6)),
            safety_margin=_float("SENDER_SAFETY_MARGIN_MS", 1000) / 1000,
        ),
        concurrency=int(_float("SENDER_CONCURRENCY", DEFAULT_CONCURRENCY)),
        logger=logger,
    )
    runtime = Runtime(sender=sender, dmhub=dmhub, token=token)
    dmhub.on_response = runtime.record_latency
    token.on_fetch = runtime.count_fetch
    return runtime


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()
_powertools: tuple[Any, Any] | None = None


def runtime(logger: Any = None) -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(logger=logger)
        return _runtime


def reset_runtime() -> None:
    """Forget the container's clients (tests that change the environment)."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.dmhub.close()
        _runtime = None


def powertools() -> tuple[Any, Any]:
    """The Powertools Logger and Metrics, created on first use."""
    global _powertools
    if _powertools is None:
        from aws_lambda_powertools import Logger, Metrics

        _powertools = (
            Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "dmhub-adapter-sender")),
            Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "DmhubAdapter")),
        )
    return _powertools


@contextmanager
def _metrics_flushed(metrics: Any) -> Iterator[None]:
    try:
        yield
    finally:
        metrics.flush_metrics()
        # Powertools clears its set only when it publishes; with metrics disabled (local runs)
        # values and dimensions would pile up across invocations.
        metrics.clear_metrics()


def _publish(metrics: Any, stats: BatchStats, latencies: list[float], fetches: int) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name="Delivered", unit=MetricUnit.Count, value=stats.delivered)
    metrics.add_metric(name="Retried", unit=MetricUnit.Count, value=stats.retried)
    metrics.add_metric(name="Failed", unit=MetricUnit.Count, value=stats.dead_lettered)
    metrics.add_metric(name="LeftForRedelivery", unit=MetricUnit.Count, value=stats.left_for_retry)
    metrics.add_metric(name="TokenFetches", unit=MetricUnit.Count, value=fetches)
    for value in latencies:
        metrics.add_metric(name="DmhubLatency", unit=MetricUnit.Milliseconds, value=round(value, 1))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger, metrics = powertools()
    if context is not None and hasattr(context, "aws_request_id"):
        logger.append_keys(request_id=context.aws_request_id)
    records = event.get("Records") or []
    with _metrics_flushed(metrics):
        try:
            current = runtime(logger)
        except Exception as exc:  # no credentials / config yet: SQS keeps the messages
            logger.error("sender not ready; batch left for redelivery", extra={"error": f"{type(exc).__name__}: {exc}"})
            metrics.add_metric(name="LeftForRedelivery", unit="Count", value=len(records))
            return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
        response, stats = current.sender.process_batch(event, context)
        latencies, fetches = current.drain()
        _publish(metrics, stats, latencies, fetches)
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
