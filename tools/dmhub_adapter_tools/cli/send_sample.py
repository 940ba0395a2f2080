"""``dmhub-adapter send-sample NAME``: send a freshly signed sample webhook to a gateway."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Any

DEFAULT_GATEWAY = "http://127.0.0.1:3000"


def default_gateway() -> str:
    """``$DMHUB_ADAPTER_GATEWAY``, else the local gateway on ``$DMHUB_ADAPTER_PORT``, else :3000."""
    port = os.environ.get("DMHUB_ADAPTER_PORT", "")
    return os.environ.get("DMHUB_ADAPTER_GATEWAY") or (f"http://127.0.0.1:{port}" if port.isdigit()
                                                       else DEFAULT_GATEWAY)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "send-sample",
        help="send a freshly signed sample webhook (wechat-follow, taobao-paid, …) to the local stack",
        description="Build sample NAME as the platform would send it now, sign it with the account's secret "
        "from the accounts file, send it to the gateway and print the HTTP status and body. "
        "--list shows the names.",
    )
    parser.add_argument("name", nargs="?", help="sample name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the sample names and exit")
    parser.add_argument(
        "--gateway",
        default=default_gateway(),
        help=f"gateway base URL (default: $DMHUB_ADAPTER_GATEWAY, else $DMHUB_ADAPTER_PORT, else {DEFAULT_GATEWAY})",
    )
    parser.add_argument("--account", default=None,
                        help="account name (default: the sample's demo account: demo, or demo-plain for "
                        "plaintext WeChat samples)")
    parser.add_argument("--accounts", metavar="FILE", help="accounts YAML (default: the packaged demo accounts)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="send the same signed request N times, as a platform retrying would (default 1)")
    parser.add_argument("--openid", help="WeChat samples: the follower's openid (default: the demo follower)")
    parser.add_argument("--tid", type=int, help="Taobao samples: the order id (default: a fresh one)")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds (default 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.local.samples import SAMPLES, build_sample

    if args.list:
        width = max(len(name) for name in SAMPLES)
        for name, spec in SAMPLES.items():
            print(f"{name:<{width}}  {spec.description}")
        return 0
    if not args.name:
        raise CommandError("give a sample NAME (or --list)", code=2)
    if args.name not in SAMPLES:
        raise CommandError(f"unknown sample {args.name!r}; known: {', '.join(SAMPLES)}", code=2)
    spec = SAMPLES[args.name]
    if args.repeat < 1:
        raise CommandError("--repeat must be at least 1", code=2)

    import yaml

    from dmhub_adapter_tools.local.accounts import load_accounts

    try:
        accounts = load_accounts(args.accounts)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise CommandError(f"accounts file: {exc}") from exc
    account = args.account or spec.account
    secret = accounts.secret(spec.source, account)
    if secret is None:
        raise CommandError(f"the accounts file has no {spec.source}/{account} account")
    params = {k: v for k, v in (("openid", args.openid), ("tid", args.tid)) if v is not None}
    try:
        sample = build_sample(args.name, secret, account=account, **params)
    except (KeyError, ValueError) as exc:
        raise CommandError(f"cannot build {args.name} for {spec.source}/{account}: {exc}") from exc

    worst = post(args.gateway, sample.method, sample.path, sample.raw_query, sample.body, sample.headers,
                 repeat=args.repeat, timeout=args.timeout)
    # The openid is personal data in real use: shown truncated, enough to tell samples apart.
    facts = ", ".join(f"{k}={str(v)[:8] + '…' if k == 'openid' else v}" for k, v in sample.facts.items())
    if facts:
        print(f"({facts})", file=sys.stderr)
    return 0 if worst < 400 else 1


def post(gateway: str, method: str, path: str, raw_query: str, body: bytes, headers: dict[str, str], *,
         repeat: int = 1, timeout: float = 30.0) -> int:
    """Send one signed request ``repeat`` times; print each answer and, from the local gateway's
    ``/_local/requests``, what became of it and the ``trace`` command for each externalId.
    Returns the worst status."""
    import httpx

    from dmhub_adapter_tools.cli import CommandError

    base = gateway.rstrip("/")
    url = f"{base}{path}" + (f"?{raw_query}" if raw_query else "")
    worst = 0
    traced: list[str] = []
    with httpx.Client(timeout=timeout) as client:
        cursor = _cursor(client, base)
        for attempt in range(1, repeat + 1):
            try:
                response = client.request(method, url, content=body or None, headers=headers)
            except httpx.HTTPError as exc:
                raise CommandError(f"{method} {base}{path}: {exc} (is `dmhub-adapter dev` running?)") from exc
            prefix = f"[{attempt}/{repeat}] " if repeat > 1 else ""
            print(f"{prefix}{method} {path} → {response.status_code} {response.reason_phrase}")
            if response.text:
                print(response.text)
            worst = max(worst, response.status_code)
            record, cursor = _record(client, base, cursor)
            if record is not None:
                counts = ", ".join(f"{k} {v}" for k, v in record["outcome"].items() if v) or "nothing to deliver"
                reason = f" ({record['reason']})" if record.get("reason") else ""
                print(f"{prefix}outcome: {counts}{reason}", file=sys.stderr)
                traced.extend(i for i in record.get("externalIds") or [] if i not in traced)
    for external_id in traced:
        source, account, _ = external_id.split(":", 2)
        print(f"trace: dmhub-adapter trace {source} {account} {shlex.quote(external_id)}", file=sys.stderr)
    return worst


def _cursor(client: Any, base: str) -> int | None:
    """The local gateway's request cursor (None for a gateway without ``/_local/requests``)."""
    try:
        response = client.get(f"{base}/_local/requests", params={"since": 1 << 62})
        return int(response.json()["next"]) if response.status_code == 200 else None
    except Exception:
        return None


def _record(client: Any, base: str, cursor: int | None) -> tuple[dict[str, Any] | None, int | None]:
    if cursor is None:
        return None, None
    try:
        answer = client.get(f"{base}/_local/requests", params={"since": cursor}).json()
    except Exception:
        return None, cursor
    records = answer.get("requests") or []
    return (records[-1] if records else None), int(answer.get("next", cursor))
