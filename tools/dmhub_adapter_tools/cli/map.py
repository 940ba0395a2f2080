"""``dmhub-adapter map SOURCE PAYLOAD_FILE [--account A]``: a dry run of the mapping."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "map",
        help="print the CustomerEvents a payload becomes (dry run: no signature check, no AWS)",
        description="Map a payload through SOURCE's mapping config and print the CustomerEvents as one "
        "JSON array on stdout, each with its identity and externalId. PAYLOAD_FILE is the raw body "
        "(XML, JSON, form) or an API Gateway HTTP API v2 event whose body is used. Encrypted payloads "
        "are decrypted with the account's secret from the accounts file. Exit 1 with the reason on "
        "stderr when the payload cannot be mapped.",
    )
    parser.add_argument("source", help="source name, e.g. wechat, taobao, youzan")
    parser.add_argument("payload_file", help="payload file ('-' for standard input)")
    parser.add_argument("--account", default="demo", help="account name (default: demo)")
    parser.add_argument(
        "--accounts",
        default=None,
        help="accounts YAML used to decrypt encrypted payloads (default: the packaged demo accounts)",
    )
    parser.add_argument("--header", action="append", default=[], metavar="K:V",
                        help="a request header the mapping reads (repeatable), e.g. X-GitHub-Event:push")
    parser.add_argument("--query", action="append", default=[], metavar="k=v",
                        help="a query parameter the mapping reads (repeatable)")
    parser.set_defaults(func=run)


def parse_pairs(values: list[str], separator: str, flag: str) -> dict[str, str]:
    """``--header K:V`` / ``--query k=v`` values as a dict; a malformed one is a clear error."""
    from dmhub_adapter_tools.cli import CommandError

    pairs: dict[str, str] = {}
    for value in values:
        name, found, rest = value.partition(separator)
        if not found or not name.strip():
            raise CommandError(f"{flag} {value!r}: expected NAME{separator}VALUE")
        pairs[name.strip()] = rest.strip() if separator == ":" else rest
    return pairs


def read_payload(path: str) -> bytes:
    """The bytes of a PAYLOAD_FILE argument (``-`` reads standard input); unreadable is a clear error."""
    from dmhub_adapter_tools.cli import CommandError

    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from exc


def run(args: argparse.Namespace) -> int:
    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.dryrun import DryRunError, dry_run

    data = read_payload(args.payload_file)
    headers = parse_pairs(args.header, ":", "--header")
    query = parse_pairs(args.query, "=", "--query")
    skipped: list[str] = []
    try:
        events = dry_run(args.source, data, account=args.account, accounts_file=args.accounts,
                         headers=headers, query=query, skipped=skipped)
    except DryRunError as exc:
        raise CommandError(str(exc)) from exc
    for reason in skipped:
        print(reason, file=sys.stderr)
    json.dump(events, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0
