"""``dmhub-adapter emulator``: the DM Hub emulator alone, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_PORT = 8900


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run the DM Hub emulator (v1 and v2 tokens and events, collector, customer identities)",
        description="Serve an emulated DM Hub (API v1 with the collector, and v2) on HOST:PORT and print "
        "its base URL (use it as DMHUB_BASE_URL). Faults can be injected with the flags below, or at runtime through "
        "POST /_emulator/config. Stops on Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with a 5xx")
    parser.add_argument("--error-status", type=int, default=503, help="status of those answers (default 503)")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="share of requests answered 429")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds of 429 answers")
    parser.add_argument("--app-id", default="demo-app", help="appid accepted by the token API (default demo-app)")
    parser.add_argument("--secret", default="demo-secret", help="its secret (default demo-secret)")
    parser.add_argument("--token-ttl", type=float, default=7200.0, help="token lifetime in seconds (default 7200)")
    parser.add_argument(
        "--event-types",
        default=None,
        help="comma separated registered custom event types; others are refused (default: any c_ type)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault and token randomness")
    parser.add_argument(
        "--rules", choices=["current", "2018"], default="current",
        help="DM Hub's rules: current (no targetId/targetName/summary on custom events, monthly partitions; "
        "default) or 2018 (the seed)",
    )
    parser.add_argument("--custom-attributes", type=int, choices=[5, 16], default=5,
                        help="custom attributes per custom event (default 5; current docs: 16)")
    parser.add_argument("--string-error-codes", action="store_true",
                        help='answer error_code as text ("40001"), as DM Hub was seen to do')
    parser.add_argument(
        "--refuse-event", action="append", default=[], metavar="TYPE[:CODE]",
        help="answer events of TYPE with a non-token body error (default code 40201); repeatable",
    )
    parser.add_argument(
        "--count-per-second",
        action="store_true",
        help="record request arrival times; GET /_emulator/state then has \"rate\": requests per second "
        "and the most in any one-second window",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log each request (path only)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading

    from pydantic import ValidationError

    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.emulator.server import EmulatorServer

    event_types = [t.strip() for t in args.event_types.split(",") if t.strip()] if args.event_types else None
    refuse: dict[str, int | str] = {}
    for item in args.refuse_event:
        kind, _, code = item.partition(":")
        if not kind:
            raise CommandError(f"--refuse-event {item!r}: give an event type")
        refuse[kind] = int(code) if code.isdigit() else (code or 40201)
    try:
        server = EmulatorServer(
            host=args.host,
            port=args.port,
            app_id=args.app_id,
            secret=args.secret,
            log=(lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None,
            latency=args.latency,
            error_rate=args.error_rate,
            error_status=args.error_status,
            throttle_rate=args.throttle_rate,
            retry_after=args.retry_after,
            token_ttl=args.token_ttl,
            event_types=event_types,
            seed=args.seed,
            rules=args.rules,
            custom_attributes=args.custom_attributes,
            string_error_codes=args.string_error_codes,
            refuse_events=refuse,
            count_per_second=args.count_per_second,
        )
    except ValidationError as exc:
        raise CommandError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from exc
    try:
        server.start()
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(server.base_url, flush=True)
    print(
        f"DM Hub emulator: appid {server.app_id}; control API {server.base_url}/_emulator/state; Ctrl-C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        # wait() with a timeout keeps the main thread responsive to Ctrl-C
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0
