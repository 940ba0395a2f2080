"""``dmhub-adapter trace SOURCE ACCOUNT EXTERNAL_ID``: where one webhook's event stands.

Prints the claim item (status PENDING/QUEUED/DELIVERED/FAILED, lease, queue message id,
DM Hub id, failure reason, times in UTC) and, when delivered, the event as DM Hub has it.
Exit 1 when there is no claim for that key.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

#: claim attributes holding epoch seconds, and the one holding epoch milliseconds
_SECONDS = ("claimedAt", "queuedAt", "deliveredAt", "failedAt", "expiresAt")
_MILLIS = ("leaseUntil",)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="where one webhook's event stands: claim status, queue message, DM Hub event",
        description="Look up the idempotency claim {SOURCE}#{ACCOUNT}#{EXTERNAL_ID} in IDEMPOTENCY_TABLE and, "
        "if it was delivered, read the event back from DM Hub.",
    )
    parser.add_argument("source")
    parser.add_argument("account")
    parser.add_argument("external_id", help="the event's externalId: the mapping's key (`dmhub-adapter map`) or "
                        "the SOURCE:ACCOUNT:… form DM Hub stores and the gateway prints")
    parser.add_argument("--partition", help="DM Hub history partition of the event, if not the default")
    parser.add_argument("--no-dmhub", action="store_true", help="do not call DM Hub")
    parser.set_defaults(func=run)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_claim(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for name in _SECONDS:
        if isinstance(out.get(name), int):
            out[name] = _iso(out[name])
    for name in _MILLIS:
        if isinstance(out.get(name), int):
            out[name] = _iso(out[name] / 1000)
    return out


def run(args: argparse.Namespace) -> int:
    from dmhub_adapter import aws
    from dmhub_adapter.dmhub.errors import DmhubError
    from dmhub_adapter.settings import Settings
    from dmhub_adapter.store.claims import ClaimStatus, ClaimTable, claim_key
    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.cli.events import dmhub_client_from_env, print_json

    settings = Settings.from_env()
    try:
        table = settings.require("idempotency_table")
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc
    external_id = args.external_id
    namespace = f"{args.source}:{args.account}:"
    if external_id.startswith(namespace):
        # the form DM Hub stores and the gateway prints; the claim is keyed by the mapping's own key
        external_id = external_id[len(namespace):]
        if external_id.startswith("~sha256:"):
            raise CommandError("a hashed externalId cannot be traced back to its claim; give the mapping's key "
                               "(`dmhub-adapter map` prints it)")
    key = claim_key(args.source, args.account, external_id)
    try:
        item = ClaimTable(table, aws.dynamodb()).get(key)
    except Exception as exc:
        raise CommandError(f"cannot read {table}: {type(exc).__name__}: {exc}") from exc
    report: dict[str, Any] = {"key": key, "claim": render_claim(item) if item else None}
    if item is None:
        report["explanation"] = (
            "no claim: the webhook never reached the ingest, was refused, went to the UnmappedQueue, "
            "or its claim expired"
        )
        print_json(report)
        return 1
    dmhub_id = item.get("dmhubId")
    if item.get("status") == ClaimStatus.DELIVERED and dmhub_id not in (None, "-") and not args.no_dmhub:
        try:
            client = dmhub_client_from_env()
            with client:
                event = client.get_event(int(dmhub_id), partition=args.partition)
            report["dmhubEvent"] = event.model_dump(mode="json")
        except (DmhubError, CommandError, ValueError) as exc:
            report["dmhubError"] = exc.describe() if isinstance(exc, DmhubError) else str(exc)
    print_json(report)
    return 0
