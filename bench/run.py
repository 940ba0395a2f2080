"""Run every benchmark and print its figures with their ratios, all measured in this run.

    python bench/run.py [--quick] [--no-built] [--only p3c ...]

P1 warm ingest cost per event (library vs inline floor, target <= 2.0), P2 cold import of
each handler (vs import boto3 + its clients, target <= 1.2), P3 sender throughput against
the DM Hub emulator at 50 ms latency (vs concurrency / latency, target >= 0.85, vs bare POSTs,
and vs a sequential run), P3c the same in v1 collector mode beside customerevents mode (events
per DM Hub call and events/s), the AWS / DM Hub requests each event costs, and the DM Hub rate cap on a
simulated fleet of sender processes (busiest one-second window vs the cap). Everything runs on
127.0.0.1: moto_server and the emulator run as child processes, as the services they stand for
would (in-process they would share the GIL with the code measured).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fake_aws_environment, out, ratio_line

if TYPE_CHECKING:
    from bench import flow as flow_module

P1_TARGET, P2_TARGET, P3_TARGET, P3_CEILING_TARGET = 2.0, 1.2, 0.85, 0.95
#: P1 runs this many times in one invocation; its worst ratio is the figure
P1_ROUNDS = 5
#: DynamoDB writes per delivered event (claim, queued, delivered), and the on-demand price per
#: million write request units (us-east-1; bench/capacity_inputs.yaml names the source)
WRITES_TARGET = 3.0
#: the DM Hub rate cap the fleet bench checks (the capacity plan's assumption)
CAP_REQUESTS_PER_SECOND = 100.0


def p1(quick: bool) -> None:
    from bench import ingest_cost

    rounds = 2 if quick else P1_ROUNDS
    out(f"P1  warm ingest cost per event (receive + map + QueuedEvent; no AWS), {rounds} rounds, worst ratio counts")
    ratios: dict[str, list[float]] = {}
    for round_number in range(1, rounds + 1):
        for name, library, floor in ingest_cost.measure(number=300 if quick else 2000, repeat=5 if quick else 7):
            ratio = library / floor
            ratios.setdefault(name, []).append(ratio)
            value = f"{library * 1e6:7.0f} us vs {floor * 1e6:5.0f} us"
            out(ratio_line(f"round {round_number}: {name}", value, ratio, f"<= {P1_TARGET}", ratio <= P1_TARGET))
    for name, values in ratios.items():
        worst = max(values)
        spread = f"{min(values):.2f}-{worst:.2f} over {len(values)}"
        out(ratio_line(f"worst of {len(values)}: {name}", spread, worst, f"<= {P1_TARGET}", worst <= P1_TARGET))


def p2(quick: bool, built: bool) -> None:
    from bench import cold_import

    runs = 3 if quick else 7
    out(f"P2  cold import in a fresh interpreter, median of {runs} (floor: import boto3 + the handler's clients)")
    results = cold_import.measure(runs)
    if built:
        results += cold_import.measure_built(runs)
    for result in results:
        value = f"{result.seconds * 1e3:6.0f} ms vs {result.floor * 1e3:5.0f} ms"
        out(ratio_line(result.name, value, result.ratio, f"<= {P2_TARGET}", result.ratio <= P2_TARGET))
    loaded = {name: cold_import.heavy_modules(name) for name in cold_import.CLIENTS}
    obstacle = cold_import.measure_obstacle(runs)
    out("  pydantic or PyYAML imported by the first request: "
        + ", ".join(f"{name} {'no' if not found else ', '.join(found)}" for name, found in loaded.items())
        + f"; a mapping checked from its YAML (no plan: MAPPINGS_DIR, an edited file) would add pydantic's import "
        f"and first model {obstacle.pydantic * 1e3:.0f} ms and the schema's classes {obstacle.models * 1e3:.0f} ms "
        f"(allowance over the floor: {(P2_TARGET - 1) * obstacle.floor * 1e3:.0f} ms)")
    for name in cold_import.CLIENTS:
        top = cold_import.importtime_top(name)
        out(f"  -X importtime, {name} import + first request (one run, checkout layer): top 10 packages by own "
            "import time, ms")
        out("    " + ", ".join(f"{package} {ms:.1f}" for package, ms in top))


def p3(quick: bool) -> flow_module.Throughput:
    from bench import flow
    from bench.capacity import read_template
    from dmhub_adapter.sender.core import DEFAULT_CONCURRENCY

    events = 80 if quick else 200
    batch_size = read_template().batch_size  # the SQS batch the template's event source delivers
    batches = max(2, events // batch_size)
    concurrency = int(os.environ.get("SENDER_CONCURRENCY", str(DEFAULT_CONCURRENCY)))
    ideal = concurrency / flow.LATENCY
    sink = io.StringIO()  # the handlers' EMF metrics and warnings
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_moto = flow.sender_throughput(concurrency, batches=batches, batch_size=batch_size)
        dynamo_like = flow.sender_throughput(concurrency, batches=batches, batch_size=batch_size,
                                             claim_write_seconds=0.005)
        bare = flow.bare_posts(concurrency, batches=batches, batch_size=batch_size)
        small = flow.sender_throughput(concurrency, batches=events // 10, batch_size=10, claim_write_seconds=0.005)
        small_bare = flow.bare_posts(concurrency, batches=events // 10, batch_size=10)
        sequential = flow.sender_throughput(1, batches=max(2, events // 40), batch_size=10)
    out(f"P3  sender throughput, emulator latency {flow.LATENCY * 1e3:.0f} ms, batches of {batch_size} (the "
        f"template's SenderBatchSize), concurrency {concurrency}, warm token and identities (ideal {ideal:.0f}/s)")
    ratio = dynamo_like.per_second / ideal
    out(ratio_line("claim writes at DynamoDB-like 5 ms, vs ideal", f"{dynamo_like.per_second:7.1f} events/s",
                   ratio, f">= {P3_TARGET}", ratio >= P3_TARGET))
    ratio = on_moto.per_second / ideal
    out(ratio_line("claim writes on moto_server (it serialises them), vs ideal",
                   f"{on_moto.per_second:7.1f} events/s", ratio, f">= {P3_TARGET}", ratio >= P3_TARGET))
    out(f"  {'bare POSTs, same pool, no sender (transport ceiling)':<58} {bare:>15.1f} events/s   "
        f"ratio {bare / ideal:6.2f} of ideal")
    ratio = dynamo_like.per_second / bare
    out(ratio_line("sender (5 ms writes) vs the transport ceiling", f"{dynamo_like.per_second:7.1f} vs {bare:5.1f}",
                   ratio, f">= {P3_CEILING_TARGET}", ratio >= P3_CEILING_TARGET))
    out(f"  {'batches of 10 (5 ms writes): sender, bare POSTs':<58} {small.per_second:>7.1f} vs {small_bare:5.1f}   "
        f"ratio {small.per_second / ideal:6.2f} of ideal, {small.per_second / small_bare:4.2f} of the ceiling "
        "(each invocation ends with one DELIVERED write after its last answer)")
    out(f"  {'sequential baseline (concurrency 1, moto, batches of 10)':<58} {sequential.per_second:>15.1f} "
        f"events/s   configured/sequential {on_moto.per_second / sequential.per_second:5.2f}x")
    per_event = {k: round(v / on_moto.events, 2) for k, v in sorted(on_moto.dmhub_calls.items())}
    out(f"  DM Hub calls per delivered event in the timed run: {per_event}")
    return dynamo_like


def p3_collector(quick: bool, customerevents: flow_module.Throughput | None = None) -> None:
    """P3's measurement in v1 collector mode beside customerevents mode: events per DM Hub call
    and events/s, SQS batches of 10 (what the local poller gives) and of 100 (one full
    ``batchPushEvents`` call; the handler is driven directly); customerevents at P3's batch."""
    from bench import flow
    from dmhub_adapter.dmhub.client import COLLECTOR_BATCH_MAX
    from dmhub_adapter.sender.core import DEFAULT_CONCURRENCY

    batches = 4 if quick else 10
    concurrency = int(os.environ.get("SENDER_CONCURRENCY", str(DEFAULT_CONCURRENCY)))
    write = 0.005  # the sender's mark-DELIVERED write at a DynamoDB-like 5 ms, as P3's headline
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if customerevents is None:
            customerevents = flow.sender_throughput(concurrency, batches=batches, claim_write_seconds=write)
        runs = [customerevents]
        for batch_size, count in ((10, batches), (100, max(2, batches // 2))):
            runs.append(flow.sender_throughput(concurrency, batches=count, batch_size=batch_size,
                                               claim_write_seconds=write, endpoint="collector"))
    out(f"P3c sender by DM Hub endpoint (v1), emulator latency {flow.LATENCY * 1e3:.0f} ms, concurrency "
        f"{concurrency}, claim writes at 5 ms, warm token")
    out("  ideal: customerevents concurrency / latency; collector one call of the whole batch (<= 100) per "
        "latency, batches one after another as one container receives them")
    out(f"  {'DMHUB_EVENT_ENDPOINT':<22} {'SQS batch':>9} {'events':>7} {'DM Hub calls':>13} "
        f"{'events/call':>12} {'events/s':>10} {'ideal/s':>8} {'of ideal':>9} {'vs customerevents':>18}")
    for run in runs:
        in_flight = concurrency if run.endpoint == "customerevents" else min(run.batch_size, COLLECTOR_BATCH_MAX)
        ideal = in_flight / flow.LATENCY
        calls = ", ".join(f"{k} {v}" for k, v in sorted(run.dmhub_calls.items()))
        out(f"  {run.endpoint:<22} {run.batch_size:>9} {run.events:>7} {sum(run.dmhub_calls.values()):>13} "
            f"{run.events_per_call:>12.1f} {run.per_second:>10.1f} {ideal:>8.0f} {run.per_second / ideal:>9.2f} "
            f"{run.per_second / customerevents.per_second:>17.2f}x   ({calls})")


def requests(quick: bool) -> None:
    from bench import flow

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = flow.request_counts(12 if quick else 40)
    out(f"REQ requests per event ({counts.events} webhooks, half WeChat follows, half Taobao payments; warm container)")

    def per(counter: dict[str, int]) -> str:
        return ", ".join(f"{k} {v / counts.events:.2f}" for k, v in sorted(counter.items())) or "none"

    out(f"  ingest, first delivery:   {per(counts.aws_first)}")
    out(f"  ingest, redelivery:       {per(counts.aws_redelivery)}")
    writes = sum(v for k, v in counts.aws_first.items() if k.startswith("dynamodb.") and k.split(".")[1] in
                 ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"))
    sqs = sum(v for k, v in counts.aws_first.items() if k.startswith("sqs."))
    out(f"  => DynamoDB writes/event at ingest {writes / counts.events:.2f}, SQS calls/event {sqs / counts.events:.2f}")
    delivered_writes = writes / counts.events + counts.sender_writes_per_event
    price = _wru_price()
    out(ratio_line("DynamoDB writes per delivered event (ingest + sender)",
                   f"{delivered_writes:.2f} = ${delivered_writes * price:.2f}/M", delivered_writes,
                   f"<= {WRITES_TARGET:g}", delivered_writes <= WRITES_TARGET))
    out(f"  sender DynamoDB writes per delivered event: {counts.sender_writes_per_event:.2f} with warm caches, "
        f"{counts.sender_writes_first:.2f} on a first delivery (new identities are cached in the table)")
    out("  sender, warm caches, DM Hub calls per delivered event: "
        + (", ".join(f"{k} {v:.2f}" for k, v in counts.dmhub_per_event.items()) or "none"))


def cap(quick: bool) -> None:
    from bench import rate_cap

    rate_cap.report(CAP_REQUESTS_PER_SECOND, instances=5, seconds=2.0 if quick else 4.0)


def _wru_price() -> float:
    import yaml

    inputs = yaml.safe_load((Path(__file__).resolve().parent / "capacity_inputs.yaml").read_text(encoding="utf-8"))
    return float(inputs["prices"]["dynamodb_per_million_wru"]["value"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run; noisier figures)")
    parser.add_argument("--no-built", action="store_true", help="skip the .aws-sam/build cold-import figures")
    parser.add_argument("--only", choices=("p1", "p2", "p3", "p3c", "requests", "cap"), action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args(argv)
    fake_aws_environment()
    parts = args.only or ["p1", "p2", "p3", "p3c", "requests", "cap"]
    if "p1" in parts:
        p1(args.quick)
    if "p2" in parts:
        p2(args.quick, not args.no_built)
    customerevents = p3(args.quick) if "p3" in parts else None
    if "p3c" in parts:
        p3_collector(args.quick, customerevents)
    if "requests" in parts:
        requests(args.quick)
    if "cap" in parts:
        cap(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
