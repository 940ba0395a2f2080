"""``dmhub-adapter send SOURCE ACCOUNT PAYLOAD_FILE [--header K:V]… [--query k=v]…``: sign any
payload with the account's secret, the way the source's verification block (or adapter) says,
and post it to the stack's gateway."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from dmhub_adapter_tools.cli.send_sample import DEFAULT_GATEWAY, default_gateway


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send",
        help="sign a payload file with an account's secret and post it to the local stack",
        description="Sign PAYLOAD_FILE as SOURCE's platform would (WeChat: signature and, for a keyed account, "
        "AES safe mode; Taobao: the relay's TOP sign; config sources: their verification block, timestamp "
        "set to now, a signed delivery id generated when missing) with ACCOUNT's secret from the accounts "
        "file, post it to the gateway, and print the answer, the outcome and the externalIds to trace.",
    )
    parser.add_argument("source", help="source name (wechat, taobao, youzan, standard-webhooks, …)")
    parser.add_argument("account", help="account name in the accounts file")
    parser.add_argument("payload_file", help="the body before signing ('-' for standard input); WeChat: "
                        "the plaintext XML push")
    parser.add_argument("--header", action="append", default=[], metavar="K:V", help="extra header (repeatable)")
    parser.add_argument("--query", action="append", default=[], metavar="k=v",
                        help="extra query parameter (repeatable)")
    parser.add_argument("--accounts", metavar="FILE", help="accounts YAML (default: the packaged demo accounts)")
    parser.add_argument("--gateway", default=default_gateway(),
                        help=f"gateway base URL (default: $DMHUB_ADAPTER_GATEWAY, else $DMHUB_ADAPTER_PORT, else "
                        f"{DEFAULT_GATEWAY})")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="send the same signed request N times")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds (default 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from dmhub_adapter.mapping.config import MappingConfigError, available_sources
    from dmhub_adapter.sources.registry import load_source_mapping, sign_for
    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.cli.map import parse_pairs, read_payload
    from dmhub_adapter_tools.cli.send_sample import post
    from dmhub_adapter_tools.local.accounts import load_accounts

    if args.repeat < 1:
        raise CommandError("--repeat must be at least 1", code=2)
    headers = parse_pairs(args.header, ":", "--header")
    query = parse_pairs(args.query, "=", "--query")
    mappings_dir = os.environ.get("MAPPINGS_DIR") or None
    try:
        mapping = load_source_mapping(args.source, mappings_dir)
    except MappingConfigError as exc:
        raise CommandError(f"the mapping of {args.source!r} is broken: {'; '.join(exc.problems)}") from exc
    if mapping is None:
        raise CommandError(f"unknown source {args.source!r}; known: {', '.join(available_sources(mappings_dir))}")
    try:
        secret = load_accounts(args.accounts).secret(args.source, args.account)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise CommandError(f"accounts file: {exc}") from exc
    if secret is None:
        raise CommandError(f"the accounts file has no {args.source}/{args.account} account (--accounts FILE)")
    body = read_payload(args.payload_file)
    try:
        signed = sign_for(mapping, secret, body, headers, query, time.time())
    except (ValueError, KeyError) as exc:
        raise CommandError(f"cannot sign for {args.source}: {exc}") from exc
    path = f"/webhooks/{args.source}/{args.account}"
    worst = post(args.gateway, "POST", path, signed.raw_query, signed.body, signed.headers,
                 repeat=args.repeat, timeout=args.timeout)
    return 0 if worst < 400 else 1
