"""The DM Hub rate cap, checked on a simulated fleet.

``instances`` sender processes (each the real ``functions/sender/app.py`` handler with its
thread pool, as the event source's ``MaximumConcurrency`` would run them) deliver SQS batches
for a few seconds against one DM Hub emulator process, which records the arrival time of
every request (``--count-per-second``). Printed: the most requests the emulator saw in any
one-second window, against the cap. The same fleet runs once without a cap, to show that the
load would exceed it.

Shared parts: one moto_server (token table, identity cache) and one emulator. The sender's
per-event DynamoDB write (mark DELIVERED) is a 5 ms wait, as in P3, because moto_server
serialises writes and would cap the fleet on its own.

    python bench/rate_cap.py [--cap 100] [--instances 5] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, out
from dmhub_adapter.sender.pacing import HEADROOM

BATCH = 10
IDENTITIES = 10
LATENCY = 0.02
WRITE_SECONDS = 0.005
MARK = "@fleet"


@dataclass
class FleetResult:
    cap: float | None
    instances: int
    seconds: float
    events: int
    requests: int
    max_in_any_1s_window: int
    per_second: dict[str, int]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds


def _queued(worker: int, n: int) -> dict[str, Any]:
    from dmhub_adapter.model.customer_event import QueuedEvent
    from dmhub_adapter.store.claims import claim_key

    external = f"fleet-{os.environ['BENCH_RUN']}-{worker}-{n}"
    return QueuedEvent.model_validate({
        "source": "acme", "account": "shop1", "claim_key": claim_key("acme", "shop1", external),
        "identity": {"type": "acme-uid", "value": f"user-{n % IDENTITIES}", "create": True},
        "event": {"event": "c_order_paid", "date": "2024-05-01T10:00:00Z", "externalId": external},
    }).model_dump(mode="json")


def worker(index: int, seconds: float) -> None:
    """One sender instance: delivers a first batch (token, identities: the warm-up), prints
    ``ready``, reads the start time (epoch) from stdin, then delivers batches from then until
    ``seconds`` have passed; prints ``{"events": n}``."""
    from dmhub_adapter.sender.events import sqs_event
    from dmhub_adapter.store.claims import ClaimTable
    from dmhub_adapter_tools.local.context import new_context
    from dmhub_adapter_tools.local.handlers import load_handler

    def mark_delivered(self: ClaimTable, key: str, dmhub_id: int | str | None) -> None:
        time.sleep(WRITE_SECONDS)

    ClaimTable.mark_delivered = mark_delivered  # type: ignore[method-assign]
    sender = load_handler(ROOT / "functions", "sender")
    batches = ([_queued(index, b * BATCH + i) for i in range(BATCH)] for b in range(1_000_000))
    sender(sqs_event(next(batches)), new_context("fleet", timeout_seconds=30))
    print(f"{MARK} ready", flush=True)  # the handler logs to stdout too
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    events = 0
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        batch = next(batches)
        response = sender(sqs_event(batch), new_context("fleet", timeout_seconds=30))
        events += len(batch) - len(response["batchItemFailures"])
    print(f"{MARK} {json.dumps({'events': events})}", flush=True)


def fleet(cap: float | None, *, instances: int = 5, seconds: float = 4.0) -> FleetResult:
    """Run ``instances`` sender processes for ``seconds`` against one emulator."""
    import uuid

    import boto3

    from bench.common import RemoteEmulator, local_aws
    from dmhub_adapter_tools.local.resources import put_accounts

    with local_aws() as aws, RemoteEmulator(LATENCY, count_per_second=True) as dmhub:
        put_accounts(boto3.session.Session(), aws.resources.secrets_prefix,
                     {"appId": dmhub.app_id, "secret": dmhub.secret}, [])
        env = {**os.environ, "DMHUB_BASE_URL": dmhub.base_url, "SENDER_MAX_INSTANCES": str(instances),
               "BENCH_RUN": uuid.uuid4().hex[:8], "PYTHONPATH": str(ROOT)}
        env.pop("DMHUB_MAX_REQUESTS_PER_SECOND", None)
        if cap is not None:
            env["DMHUB_MAX_REQUESTS_PER_SECOND"] = str(cap)
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", f"from bench.rate_cap import worker; worker({index}, {seconds!r})"],
                env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for index in range(instances)
        ]
        for process in processes:  # every instance warm (token, identities) before the timed part
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith(f"{MARK} ready"):
                    break
            else:
                raise RuntimeError(f"a fleet instance failed:\n{process.communicate(timeout=30)[1][-2000:]}")
        start_at = time.time() + 0.2
        for process in processes:  # all at once
            assert process.stdin is not None
            process.stdin.write(f"{start_at!r}\n")
            process.stdin.flush()
        with ThreadPoolExecutor(len(processes)) as pool:  # drained together: a full pipe would stall one
            outputs = list(pool.map(lambda process: process.communicate(timeout=120), processes))
        events = 0
        for process, (stdout, stderr) in zip(processes, outputs, strict=True):
            if process.returncode != 0:
                raise RuntimeError(f"a fleet instance failed:\n{stderr[-2000:]}")
            (line,) = [line for line in stdout.splitlines() if line.startswith(MARK)]
            events += json.loads(line.removeprefix(MARK))["events"]
        rate = dmhub.state.rate()
        assert rate is not None
        return FleetResult(cap, instances, seconds, events, rate["requests"], rate["max_in_any_1s_window"],
                           rate["per_second"])


def report(cap: float, *, instances: int = 5, seconds: float = 4.0) -> None:
    """Print the fleet's busiest second without and with the cap."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        free = fleet(None, instances=instances, seconds=seconds)
        capped = fleet(cap, instances=instances, seconds=seconds)
    out(f"CAP DM Hub rate cap {cap:g} requests/s on a fleet of {instances} sender processes, {seconds:g} s each, "
        f"emulator latency {LATENCY * 1e3:.0f} ms (pacing at {HEADROOM:.0%} of {cap / instances:g}/s per instance)")
    for label, result in (("no cap", free), (f"cap {cap:g}", capped)):
        met = result.max_in_any_1s_window <= cap
        out(f"  {label:<10} most requests in any 1 s window {result.max_in_any_1s_window:>5}   "
            f"({result.requests} requests, {result.events_per_second:6.1f} events/s)   target <= {cap:g}  "
            + ("" if result.cap is None else ("MET" if met else "NOT MET")))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--cap``, ``--instances``, ``--seconds``."""
    from bench.common import fake_aws_environment

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=float, default=100.0)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    fake_aws_environment()
    report(args.cap, instances=args.instances, seconds=args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
