"""Logging, metrics and tracing, set up once for each function the same way.

:class:`Telemetry` owns the Powertools ``Logger`` and ``Metrics`` of a function and wraps its
handler: the Lambda context goes into every log line, the invocation's metrics are flushed
as CloudWatch EMF and then cleared (Powertools clears its set only when it publishes; with
metrics disabled, as in local runs, values and dimensions would otherwise pile up across
invocations), and X-Ray tracing is added when it is on.

The tracer patches botocore alone: every AWS call goes through botocore, while ``patch_all``
imports every library it can patch that is installed only to patch it (20 ms for botocore
against 120-190 ms). Without aws-xray-sdk installed the function runs untraced rather than
failing every cold start.

Business logic never sees Powertools: it reports to a :class:`MetricsSink` (counts with an
optional ``reason`` dimension, and timings), which :class:`PowertoolsMetrics` turns into EMF
and :class:`RecordingMetrics` keeps in memory for tests and dry runs.

Example (a function's ``app.py``)::

    settings = IngestSettings.from_env()
    telemetry = Telemetry(settings.observability)

    def handle(event, context):
        ...

    lambda_handler = telemetry.wrap(handle, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics

from dmhub_adapter.settings import Observability

#: what the X-Ray SDK patches when tracing is on (DynamoDB, SQS, Secrets Manager calls)
TRACED_MODULES = ("botocore",)

Handler = Callable[[dict[str, Any], Any], Any]

# Refusals answered before anything is counted (unknown routes) flush an empty set; that is normal.
warnings.filterwarnings("ignore", message="No application metrics to publish")


class MetricsSink(Protocol):
    """Where business logic reports what it did; the function decides where it goes."""

    def set_source(self, source: str) -> None:
        """Dimension the following counts by a known source (never an unknown URL segment)."""
        ...

    def count(self, metric: str, value: int = 1, *, reason: str | None = None) -> None:
        """Add ``value`` to ``metric`` (with a ``reason`` dimension when given)."""
        ...

    def timing(self, metric: str, milliseconds: float) -> None:
        """Record one duration sample of ``metric``."""
        ...


class NullMetrics:
    """A sink that drops everything (callers that do not report)."""

    def set_source(self, source: str) -> None:
        """Ignored."""

    def count(self, metric: str, value: int = 1, *, reason: str | None = None) -> None:
        """Ignored."""

    def timing(self, metric: str, milliseconds: float) -> None:
        """Ignored."""


class RecordingMetrics:
    """Keeps counts in memory, keyed ``metric`` or ``metric:reason`` (tests, dry runs); thread-safe."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.timings: dict[str, list[float]] = {}
        self.source: str | None = None
        self._lock = threading.Lock()

    def set_source(self, source: str) -> None:
        """Remember the source."""
        self.source = source

    def count(self, metric: str, value: int = 1, *, reason: str | None = None) -> None:
        """Add to the in-memory count."""
        if value:
            with self._lock:
                self.counts[f"{metric}:{reason}" if reason else str(metric)] += value

    def timing(self, metric: str, milliseconds: float) -> None:
        """Keep the sample."""
        with self._lock:
            self.timings.setdefault(str(metric), []).append(milliseconds)


class PowertoolsMetrics:
    """Counts as CloudWatch EMF through a Powertools ``Metrics`` instance.

    Plain counts join the invocation's metric set (flushed by :meth:`Telemetry.wrap`); counts
    with a reason are emitted at once as single metrics, so each reason is its own dimension
    value without splitting the rest of the set. Timings join the set as milliseconds.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._source: str | None = None
        self._dimensioned = False
        self._lock = threading.Lock()

    def set_source(self, source: str) -> None:
        """Dimension what follows by ``source`` (the first one set wins)."""
        self._source = self._source or source

    def count(self, metric: str, value: int = 1, *, reason: str | None = None) -> None:
        """Add a count to the invocation's set, or emit it with its reason at once."""
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        if not value:
            return
        if reason is None:
            with self._lock:
                self._dimension()
                self._metrics.add_metric(name=str(metric), unit=MetricUnit.Count, value=value)
            return
        if metrics_disabled():
            return
        dimensions = dict(self._metrics.default_dimensions)
        if self._metrics.service:
            dimensions.setdefault("service", self._metrics.service)
        if self._source:
            dimensions["source"] = self._source
        with single_metric(
            name=str(metric),
            unit=MetricUnit.Count,
            value=value,
            namespace=self._metrics.namespace,
            default_dimensions=dimensions,
        ) as single:
            single.add_dimension(name="reason", value=reason)

    def timing(self, metric: str, milliseconds: float) -> None:
        """Add one millisecond sample to the invocation's set."""
        from aws_lambda_powertools.metrics import MetricUnit

        with self._lock:
            self._dimension()
            self._metrics.add_metric(name=str(metric), unit=MetricUnit.Milliseconds, value=round(milliseconds, 1))

    def _dimension(self) -> None:
        # The dimension joins the shared set only with a metric: Powertools does not clear
        # the set when it flushes nothing, so a lone dimension would leak into the next
        # invocation.
        if self._source and not self._dimensioned:
            self._metrics.add_dimension(name="source", value=self._source)
            self._dimensioned = True


def metrics_disabled() -> bool:
    """Whether Powertools metrics are switched off (``POWERTOOLS_METRICS_DISABLED``, local runs).

    Powertools honours the switch when it flushes a metric set but not for single metrics
    (cold start, counts with a reason), which it always prints; this module asks first."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    return bool(is_metrics_disabled())


# -- outcomes: what an invocation came to, for whoever watches it ---------------------------------

#: receives every outcome published in the current context (see :func:`observing`)
OutcomeObserver = Callable[[object], None]

_observer: ContextVar[OutcomeObserver | None] = ContextVar("dmhub_adapter_outcome_observer", default=None)


@contextmanager
def observing(observer: OutcomeObserver) -> Iterator[None]:
    """Pass every outcome published in this context (this thread, this block) to ``observer``.

    The ingest publishes a :class:`~dmhub_adapter.ingest.outcome.RequestOutcome` per request, the
    sender a :class:`~dmhub_adapter.sender.core.BatchStats` per batch. Deployed nobody observes
    (the log lines are the record); the local gateway and poller do, to print one line each. A
    context variable rather than a listener list: each thread sees only its own invocation."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def publish_outcome(outcome: object) -> None:
    """Hand ``outcome`` to the current context's observer, if one is watching; an observer's
    failure is the observer's problem, never the invocation's."""
    observer = _observer.get()
    if observer is None:
        return
    try:
        observer(outcome)
    except Exception:
        logging.getLogger(__name__).exception("an outcome observer failed")


class Telemetry:
    """One function's Logger, Metrics and optional Tracer, and the wrapper of its handler."""

    def __init__(self, config: Observability) -> None:
        self.config = config
        self.logger = Logger(service=config.service)
        self.metrics = Metrics(namespace=config.namespace, service=config.service)

    def sink(self) -> PowertoolsMetrics:
        """A fresh sink for one invocation (its source dimension is per request)."""
        return PowertoolsMetrics(self.metrics)

    def wrap(self, handler: Handler, *, correlation_id_path: str | None = None) -> Handler:
        """``handler`` with the Lambda context in every log line, the metrics flushed and
        cleared after each invocation, and X-Ray tracing when it is on."""
        metrics = self.metrics
        published: Handler = metrics.log_metrics(capture_cold_start_metric=not metrics_disabled())(handler)

        def cleared(event: dict[str, Any], context: Any) -> Any:
            try:
                return published(event, context)
            finally:
                metrics.clear_metrics()

        logged: Handler = self.logger.inject_lambda_context(correlation_id_path=correlation_id_path)(cleared)
        return self._traced(logged)

    def _traced(self, handler: Handler) -> Handler:
        if not self.config.tracing:
            return handler
        from aws_lambda_powertools import Tracer

        try:
            tracer = Tracer(service=self.config.service, patch_modules=TRACED_MODULES)
        except ModuleNotFoundError as exc:
            self.logger.warning("tracing is enabled but unavailable; running untraced", extra={"missing": exc.name})
            return handler
        traced: Handler = tracer.capture_lambda_handler(handler, capture_response=False)
        return traced
