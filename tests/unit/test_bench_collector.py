"""P3c's report (bench/run.py): the runs it asks for and the figures it prints from them,
with the measurement replaced by fixed results (no servers, no timing)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from bench import flow, run
from bench.flow import Throughput


def test_events_per_call_counts_every_dmhub_call() -> None:
    result = Throughput(10, 10, 100, 1.0, Counter({"collector.batch": 10, "token": 2}), "collector")
    assert result.events_per_call == pytest.approx(100 / 12)
    assert math.isnan(Throughput(10, 10, 0, 1.0).events_per_call)


def test_p3c_runs_the_collector_at_batches_of_10_and_100_beside_customerevents(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[dict[str, Any]] = []

    def fake(concurrency: int, **options: Any) -> Throughput:
        asked.append(options)
        size, batches = options.get("batch_size", 10), options["batches"]
        endpoint = options.get("endpoint", "customerevents")
        events = size * batches
        calls = Counter({"collector.batch": batches} if endpoint == "collector" else {"events.create": events})
        seconds = {"customerevents": 1.0, "collector": 0.5}[endpoint] * events / 100
        return Throughput(concurrency, size, events, seconds, calls, endpoint)

    monkeypatch.setattr(flow, "sender_throughput", fake)
    monkeypatch.delenv("SENDER_CONCURRENCY", raising=False)
    run.p3_collector(quick=True)
    assert [(o.get("endpoint", "customerevents"), o.get("batch_size", 10)) for o in asked] == [
        ("customerevents", 10), ("collector", 10), ("collector", 100)]
    assert all(o["claim_write_seconds"] == 0.005 for o in asked)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] in (["customerevents"], ["collector"])]
    # endpoint, batch, events, calls, events/call, events/s, ideal/s, of ideal, vs customerevents
    assert [row[:9] for row in rows] == [
        ["customerevents", "10", "40", "40", "1.0", "100.0", "200", "0.50", "1.00x"],
        ["collector", "10", "40", "4", "10.0", "200.0", "200", "1.00", "2.00x"],
        ["collector", "100", "200", "2", "100.0", "200.0", "2000", "0.10", "2.00x"],
    ]


def test_p3c_reuses_the_customerevents_run_p3_measured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[str] = []

    def fake(concurrency: int, **options: Any) -> Throughput:
        asked.append(options.get("endpoint", "customerevents"))
        return Throughput(concurrency, options["batch_size"], 100, 1.0, Counter({"collector.batch": 1}), "collector")

    monkeypatch.setattr(flow, "sender_throughput", fake)
    measured = Throughput(10, 10, 100, 2.0, Counter({"events.create": 100}))
    run.p3_collector(quick=True, customerevents=measured)
    assert asked == ["collector", "collector"]
    assert " 50.0 " in capsys.readouterr().out
