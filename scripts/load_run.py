"""Load run through the local stack: mixed signed webhooks with redeliveries and DM Hub faults.

    python scripts/load_run.py [-n 10000] [--concurrency 16] [--redeliveries 0.3] [--faults 0.05]
                               [--ready-file PATH]   # reuse a running `dmhub-adapter dev`

Starts ``dmhub-adapter dev`` on free ports (127.0.0.1 only) unless ``--ready-file`` names a
running stack's ready file; sends N webhooks (WeChat safe-mode follows and unfollows, Taobao
order-created and paid) of which a share are redeliveries of earlier ones, with the emulator
failing a share of event POSTs with 5xx; waits until the EventQueue drains; checks DM Hub
holds exactly the unique events (by externalId) and the DLQ is empty; prints throughput and
ingest latency percentiles. Exit status 1 when the check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("wechat-follow", "wechat-unfollow", "taobao-paid", "taobao-created")


@dataclass
class LoadResult:
    sent: int
    unique: int
    statuses: dict[int, int]
    seconds: float
    drain_seconds: float
    latencies_ms: list[float]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dead_letters: int = 0
    counters: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected and self.dead_letters == 0 and set(self.statuses) == {200}

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0

    def report(self) -> str:
        lines = [
            f"webhooks sent        {self.sent} ({self.unique} unique events, {self.sent - self.unique} redeliveries)",
            f"HTTP statuses        {dict(sorted(self.statuses.items()))}",
            f"ingest throughput    {self.sent / self.seconds:.1f} webhooks/s over {self.seconds:.1f} s",
            f"ingest latency       p50 {self.percentile(0.50):.1f} ms, p99 {self.percentile(0.99):.1f} ms, "
            f"mean {statistics.fmean(self.latencies_ms) if self.latencies_ms else 0:.1f} ms",
            f"drained after        {self.drain_seconds:.1f} s more; end-to-end "
            f"{self.unique / (self.seconds + self.drain_seconds):.1f} events/s",
            f"DM Hub               events {self.counters.get('events', 0)}, created "
            f"{self.counters.get('events_created', 0)}, updated {self.counters.get('events_updated', 0)}, "
            f"faults {self.counters.get('faults', {})}",
            f"dead letters         {self.dead_letters}",
            f"missing / unexpected {len(self.missing)} / {len(self.unexpected)}",
            "RESULT               " + ("OK: DM Hub holds exactly the unique events" if self.ok else "FAILED"),
        ]
        return "\n".join(lines)


def _secrets() -> dict[str, dict[str, Any]]:
    from dmhub_adapter_tools.local.accounts import load_accounts

    return {a["source"]: dict(a["secret"]) for a in load_accounts(None).accounts if a["account"] == "demo"}


def expected_external_ids(sample: Any, secret: dict[str, Any]) -> list[str]:
    """The externalIds DM Hub will store for a sample, by the library's own dry-run path (no AWS)."""
    from dmhub_adapter.ingest.external_ids import dmhub_external_id
    from dmhub_adapter.mapping.engine import map_payload
    from dmhub_adapter.sources.base import Account
    from dmhub_adapter.sources.registry import source_for
    from dmhub_adapter.webhook import WebhookRequest

    source = source_for(sample.source)
    assert source is not None
    request = WebhookRequest(method="POST", source=sample.source, account=sample.account, body=sample.body,
                             query=dict(parse_qsl(sample.raw_query)), raw_query=sample.raw_query,
                             headers=sample.headers, received_at=time.time())
    inbound = source.parse_unverified(request, Account(sample.source, sample.account, source.mapping, secret))
    results = map_payload(source.mapping, inbound.messages, {"source": sample.source, "account": sample.account,
                                                             "received_at": int(request.received_at)})
    return [dmhub_external_id(sample.source, sample.account, str(m.event.externalId))
            for r in results for m in r.events]


def _sample(kind: str, n: int, secrets: dict[str, dict[str, Any]], run: str) -> Any:
    from dmhub_adapter_tools.local.samples import build_sample

    if kind.startswith("wechat"):
        return build_sample(kind, secrets["wechat"], openid=f"oLoad-{run}-{n:07d}")
    return build_sample(kind, secrets["taobao"], tid=3_950_000_000_000_000_000 + int(run, 16) % 10**9 * 10**6 + n)


@contextmanager
def local_stack(ready_file: str | None, verbose: bool = False) -> Iterator[dict[str, Any]]:
    if ready_file and Path(ready_file).exists():
        yield json.loads(Path(ready_file).read_text(encoding="utf-8"))
        return
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(ready_file or Path(tmp) / "ready.json")
        log = open(Path(tmp) / "dev.log", "wb")  # noqa: SIM115  (closed below)
        command = [sys.executable, "-m", "dmhub_adapter_tools.cli", "dev",
                   "--port", "0", "--ready-file", str(ready), "--poll-wait", "1", "--visibility-timeout", "2",
                   "--max-receive-count", "10"]
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError("dmhub-adapter dev did not start:\n"
                                       + (Path(tmp) / "dev.log").read_text(errors="replace")[-3000:])
                time.sleep(0.1)
            yield json.loads(ready.read_text(encoding="utf-8"))
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            if verbose:
                print((Path(tmp) / "dev.log").read_text(errors="replace")[-5000:])


def run_load(stack: dict[str, Any], count: int, *, concurrency: int = 16, redeliveries: float = 0.3,
             faults: float = 0.05, seed: int = 1, drain_timeout: float = 600.0) -> LoadResult:
    gateway, dmhub = str(stack["gateway"]), str(stack["dmhub"])
    for url in (gateway, dmhub):
        if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise ValueError(f"refusing to send load anywhere but loopback: {url}")
    rng = random.Random(seed)
    secrets = _secrets()
    run = os.urandom(4).hex()
    with httpx.Client(timeout=30) as control:
        control.post(f"{dmhub}/_emulator/config",
                     json={"error_rate": faults, "error_status": 503, "fault_endpoints": ["events.create"],
                           "seed": seed}).raise_for_status()
        before = control.get(f"{dmhub}/_emulator/state").json()
    known_before = {e["externalId"] for e in before["events"]}

    plan: list[tuple[str, int]] = []  # (kind, sample number); repeats are redeliveries
    unique = 0
    for _ in range(count):
        if unique and rng.random() < redeliveries:
            plan.append(plan[rng.randrange(max(0, len(plan) - 200), len(plan))])
        else:
            plan.append((KINDS[unique % len(KINDS)], unique))
            unique += 1

    built: dict[int, Any] = {}
    expected: set[str] = set()
    lock = threading.Lock()
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.Client(timeout=30, limits=limits)

    def send(item: tuple[str, int]) -> None:
        kind, number = item
        with lock:
            sample = built.get(number)
            if sample is None:
                sample = built[number] = _sample(kind, number, secrets, run)
                expected.update(expected_external_ids(sample, secrets[sample.source]))
        started = time.perf_counter()
        response = client.post(sample.url(gateway), content=sample.body, headers=sample.headers)
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            latencies.append(elapsed)

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(send, plan))
    finally:
        client.close()
    seconds = time.perf_counter() - started

    drain_started = time.perf_counter()
    deadline = time.monotonic() + drain_timeout
    with httpx.Client(timeout=60) as control:
        state = control.get(f"{dmhub}/_emulator/state").json()
        while time.monotonic() < deadline:
            stored = {e["externalId"] for e in state["events"]} - known_before
            if stored >= expected and _queue_empty(stack):
                break
            time.sleep(1.0)
            state = control.get(f"{dmhub}/_emulator/state").json()
        drain_seconds = time.perf_counter() - drain_started
        control.post(f"{dmhub}/_emulator/config", json={"error_rate": 0.0}).raise_for_status()
    events = [e for e in state["events"] if e["externalId"] not in known_before]
    stored_ids = [e["externalId"] for e in events]
    counters = dict(state["counters"])
    counters["events"] = len(events)
    return LoadResult(
        sent=count, unique=len(expected), statuses=statuses, seconds=seconds, drain_seconds=drain_seconds,
        latencies_ms=latencies, missing=sorted(expected - set(stored_ids)),
        unexpected=sorted(set(stored_ids) - expected) + sorted({i for i in stored_ids if stored_ids.count(i) > 1}),
        dead_letters=_dead_letters(stack), counters=counters,
    )


def _sqs(stack: dict[str, Any]) -> Any:
    import boto3

    env = stack["environment"]
    return boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                 region_name=env["AWS_DEFAULT_REGION"]).client("sqs",
                                                                               endpoint_url=env["AWS_ENDPOINT_URL"])


def _queue_empty(stack: dict[str, Any]) -> bool:
    attributes = _sqs(stack).get_queue_attributes(
        QueueUrl=stack["environment"]["EVENT_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(v) == 0 for v in attributes.values())


def _dead_letters(stack: dict[str, Any]) -> int:
    attributes = _sqs(stack).get_queue_attributes(
        QueueUrl=stack["environment"]["DEAD_LETTER_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--count", type=int, default=10_000, help="webhooks to send (default 10000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--redeliveries", type=float, default=0.3, help="share of redeliveries (default 0.3)")
    parser.add_argument("--faults", type=float, default=0.05, help="share of DM Hub 5xx on event POSTs (0.05)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ready-file", help="a running `dmhub-adapter dev --ready-file` to reuse")
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds to wait for the drain")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 100_000 or not 1 <= args.concurrency <= 64:
        parser.error("--count must be 1..100000 and --concurrency 1..64")
    with local_stack(args.ready_file) as stack:
        result = run_load(stack, args.count, concurrency=args.concurrency, redeliveries=args.redeliveries,
                          faults=args.faults, seed=args.seed, drain_timeout=args.drain_timeout)
    print(result.report())
    if result.missing[:5] or result.unexpected[:5]:
        print("first missing:", result.missing[:5], "first unexpected:", result.unexpected[:5])
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
