"""Metric sinks: the EMF the Powertools sink prints and the recorder tests use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_lambda_powertools import Metrics

from dmhub_adapter.ingest.metrics import Metric
from dmhub_adapter.observability import PowertoolsMetrics, RecordingMetrics
from tests.conftest import emf


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    # Powertools keeps one metric set per process: start and end with it empty.
    shared = Metrics(namespace="Test", service="ingest")
    shared.clear_metrics()
    yield shared
    shared.clear_metrics()


def test_plain_counts_join_the_set_with_the_source_dimension(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = PowertoolsMetrics(metrics)
    sink.set_source("wechat")
    sink.count(Metric.RECEIVED)
    sink.count(Metric.ENQUEUED, 3)
    sink.count(Metric.DUPLICATE, 0)
    metrics.flush_metrics()

    (blob,) = emf(capsys.readouterr().out)
    assert blob["source"] == "wechat" and blob["service"] == "ingest"
    assert blob["Received"] == [1.0] and blob["Enqueued"] == [3.0]
    assert "Duplicate" not in blob


def test_counts_with_a_reason_are_single_metrics_dimensioned_by_it(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = PowertoolsMetrics(metrics)
    sink.set_source("taobao")
    sink.count(Metric.REJECTED, reason="unauthorized")

    (blob,) = emf(capsys.readouterr().out)
    assert blob["Rejected"] == [1.0]
    assert (blob["reason"], blob["source"], blob["service"]) == ("unauthorized", "taobao", "ingest")
    dimensions = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]  # type: ignore[index]
    assert set(dimensions) == {"reason", "source", "service"}


def test_a_source_without_plain_counts_does_not_leak_into_the_next_set(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    first = PowertoolsMetrics(metrics)
    first.set_source("wechat")
    first.count(Metric.REJECTED, reason="method_not_allowed")
    with pytest.warns(UserWarning):
        metrics.flush_metrics()  # nothing in the set: Powertools keeps its dimensions
    second = PowertoolsMetrics(metrics)
    second.count(Metric.RECEIVED)
    metrics.flush_metrics()

    blobs = emf(capsys.readouterr().out)
    assert "source" not in blobs[-1]


def test_the_recorder_keys_counts_by_metric_and_reason() -> None:
    sink = RecordingMetrics()
    sink.count(Metric.REJECTED, reason="unauthorized")
    sink.count(Metric.REJECTED, 2, reason="unauthorized")
    sink.count(Metric.ENQUEUED, 0)

    assert dict(sink.counts) == {"Rejected:unauthorized": 3}
