"""Metric names of the ingest and the sink the pipeline reports them to.

The pipeline only counts; the function decides where counts go (Powertools EMF in Lambda,
a recorder in tests). Units: ``Received`` counts requests, ``Enqueued``/``Duplicate`` count
events, ``Skipped``/``Unmapped`` count messages, ``Rejected`` counts refused requests and
refused messages (dimension ``reason``), ``Unavailable`` counts 503 answers (dimension
``reason``: the failed step).
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any, Protocol


class Metric(StrEnum):
    RECEIVED = "Received"
    HANDSHAKE = "Handshake"
    ENQUEUED = "Enqueued"
    DUPLICATE = "Duplicate"
    SKIPPED = "Skipped"
    UNMAPPED = "Unmapped"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"


#: ``reason`` of a message refused inside an otherwise authentic payload
MESSAGE_REJECTED = "message"


class MetricsSink(Protocol):
    def set_source(self, source: str) -> None:
        """Dimension the following counts by a known source (never an unknown URL segment)."""
        ...

    def count(self, metric: Metric, value: int = 1, *, reason: str | None = None) -> None: ...


class NullMetrics:
    def set_source(self, source: str) -> None:
        return None

    def count(self, metric: Metric, value: int = 1, *, reason: str | None = None) -> None:
        return None


class RecordingMetrics:
    """Keeps counts in memory, keyed ``Metric`` or ``Metric:reason`` (tests, dry runs)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.source: str | None = None

    def set_source(self, source: str) -> None:
        self.source = source

    def count(self, metric: Metric, value: int = 1, *, reason: str | None = None) -> None:
        if value:
            self.counts[f"{metric.value}:{reason}" if reason else metric.value] += value


class PowertoolsMetrics:
    """Counts as CloudWatch EMF through a Powertools ``Metrics`` instance.

    Plain counts join the invocation's metric set (flushed by ``log_metrics``); counts with a
    reason are emitted at once as single metrics, so each reason is its own dimension value
    without splitting the rest of the set.
    """

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics
        self._source: str | None = None
        self._dimensioned = False

    def set_source(self, source: str) -> None:
        self._source = self._source or source

    def count(self, metric: Metric, value: int = 1, *, reason: str | None = None) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        if not value:
            return
        if reason is None:
            # The dimension joins the shared set only with a metric: Powertools does not clear
            # the set when it flushes nothing, so a lone dimension would leak into the next
            # invocation.
            if self._source and not self._dimensioned:
                self._metrics.add_dimension(name="source", value=self._source)
                self._dimensioned = True
            self._metrics.add_metric(name=metric.value, unit=MetricUnit.Count, value=value)
            return
        dimensions = dict(self._metrics.default_dimensions)
        if self._metrics.service:
            dimensions.setdefault("service", self._metrics.service)
        if self._source:
            dimensions["source"] = self._source
        with single_metric(
            name=metric.value,
            unit=MetricUnit.Count,
            value=value,
            namespace=self._metrics.namespace,
            default_dimensions=dimensions,
        ) as single:
            single.add_dimension(name="reason", value=reason)
