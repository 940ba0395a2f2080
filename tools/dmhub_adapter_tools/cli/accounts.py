"""``dmhub-adapter accounts {put,list,get,delete}``: account secrets in Secrets Manager.

Secrets live under ``{SECRETS_PREFIX}/{SOURCE}/{ACCOUNT}`` — in AWS, or in the local stack
through ``AWS_ENDPOINT_URL``; the DM Hub credentials are one secret, ``{SECRETS_PREFIX}/dmhub``
(``accounts put dmhub --from-json FILE``, no ACCOUNT). ``put`` checks the secret the way the
source's adapter will read it (the fields its verification or adapter needs, key material that
decodes, unknown fields with the likely name — the same check ``dev`` runs on its accounts
file) and says where it wrote. Values are never printed unless ``get --show`` asks.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "accounts",
        help="manage account secrets in Secrets Manager (put, list, get, delete)",
        description="Account secrets live in Secrets Manager under {SECRETS_PREFIX}/{source}/{account}; "
        "the DM Hub credentials under {SECRETS_PREFIX}/dmhub.",
    )
    commands = parser.add_subparsers(dest="accounts_command", metavar="{put,list,get,delete}", required=True)
    put = commands.add_parser(
        "put",
        help="create or update an account's secret (checked for its source first)",
        description="Write the JSON object in FILE as the secret {SECRETS_PREFIX}/SOURCE/ACCOUNT, after checking "
        "it the way SOURCE's adapter reads it. SOURCE dmhub writes {SECRETS_PREFIX}/dmhub (appId, secret) and "
        "takes no ACCOUNT.",
    )
    put.add_argument("source", help="a source with a mapping (wechat, taobao, standard-webhooks, …) or dmhub")
    put.add_argument("account", nargs="?", help="account name (not with dmhub)")
    put.add_argument("--from-json", dest="from_json", required=True, help="JSON file ('-' for standard input)")
    put.set_defaults(func=run_put)

    listing = commands.add_parser("list", help="the secrets under SECRETS_PREFIX (names and fields, no values)")
    listing.add_argument("source", nargs="?", help="only this source's accounts")
    listing.set_defaults(func=run_list)

    get = commands.add_parser("get", help="one account's secret, values redacted unless --show")
    get.add_argument("source", help="source, or dmhub")
    get.add_argument("account", nargs="?", help="account name (not with dmhub)")
    get.add_argument("--show", action="store_true", help="print the values in clear")
    get.set_defaults(func=run_get)

    delete = commands.add_parser("delete", help="delete an account's secret")
    delete.add_argument("source", help="source, or dmhub")
    delete.add_argument("account", nargs="?", help="account name (not with dmhub)")
    delete.add_argument("--force", action="store_true",
                        help="delete at once (default: AWS keeps it 7 days, restorable)")
    delete.set_defaults(func=run_delete)


def check_secret(source: str, value: Any, mappings_dir: str | None = None) -> list[str]:
    """Problems with a secret for ``source`` (empty when it looks usable), by the source's adapter."""
    from dmhub_adapter.mapping.config import MappingConfigError, available_sources
    from dmhub_adapter.sources.registry import check_account_secret, load_source_mapping

    if not isinstance(value, dict) or not value:
        return ["the secret must be a non-empty JSON object"]
    if source == "dmhub":
        problems = [f"dmhub secrets need a non-empty string {name!r}" for name in ("appId", "secret")
                    if not isinstance(value.get(name), str) or not value[name]]
        return problems + [f"unknown field {name!r}; dmhub secrets hold appId, secret"
                           for name in sorted(set(value) - {"appId", "secret"})]
    try:
        mapping = load_source_mapping(source, mappings_dir)
    except MappingConfigError as exc:
        return [f"the mapping of {source!r} is broken: {'; '.join(exc.problems)}"]
    if mapping is None:
        known = ", ".join(available_sources(mappings_dir))
        return [f"unknown source {source!r} (known: {known}, and dmhub); MAPPINGS_DIR adds sources"]
    return check_account_secret(mapping, value)


def _secret_name(args: argparse.Namespace) -> str:
    from dmhub_adapter.settings import Settings
    from dmhub_adapter_tools.cli import CommandError

    source = args.source.strip().lower()
    if source == "dmhub":
        if args.account:
            raise CommandError("dmhub credentials are one secret: give no ACCOUNT")
        return Settings.from_env().secret_name("dmhub")
    if not args.account:
        raise CommandError(f"give the account name: accounts {args.accounts_command} {source} ACCOUNT")
    if "/" in args.account or "/" in source:
        raise CommandError("source and account names cannot contain '/'")
    return Settings.from_env().secret_name(source, args.account)


def _client() -> Any:
    import boto3

    return boto3.session.Session().client("secretsmanager")


def _where(client: Any) -> str:
    """Where the secret went: the endpoint (moto for the local stack) and the region."""
    return f"{client.meta.endpoint_url} ({client.meta.region_name})"


def redact(value: Any) -> Any:
    """A secret's values hidden: a string shows its length, other values their type."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, str):
        return f"<{len(value)} characters>"
    return f"<{type(value).__name__}>"


def run_put(args: argparse.Namespace) -> int:
    import os

    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.local.resources import put_secret

    source = args.source.strip().lower()
    name = _secret_name(args)
    try:
        if args.from_json == "-":
            text = sys.stdin.read()
        else:
            with open(args.from_json, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise CommandError(f"cannot read {args.from_json}: {exc.strerror}") from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{args.from_json} is not JSON: {exc}") from exc
    problems = check_secret(source, value, os.environ.get("MAPPINGS_DIR") or None)
    if problems:
        raise CommandError(f"nothing written to {name}: " + "; ".join(problems))
    import boto3

    session = boto3.session.Session()
    try:
        put_secret(session, name, value)
    except Exception as exc:
        raise CommandError(f"cannot write {name}: {type(exc).__name__}: {exc}") from exc
    where = _where(session.client("secretsmanager"))
    print(f"wrote {name} at {where}: fields {', '.join(sorted(value))}", file=sys.stderr)
    json.dump({"secret": name, "keys": sorted(value), "endpoint": where}, sys.stdout)
    sys.stdout.write("\n")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from dmhub_adapter.settings import Settings
    from dmhub_adapter_tools.cli import CommandError

    prefix = Settings.from_env().secret_name(args.source) if args.source else Settings.from_env().secrets_prefix
    client = _client()
    rows: list[dict[str, Any]] = []
    try:
        for page in client.get_paginator("list_secrets").paginate(
                Filters=[{"Key": "name", "Values": [prefix + "/"]}]):
            for entry in page.get("SecretList", []):
                if not str(entry.get("Name", "")).startswith(prefix + "/"):
                    continue
                rows.append({"secret": entry["Name"], "updated": str(entry.get("LastChangedDate") or "")})
    except Exception as exc:
        raise CommandError(f"cannot list secrets: {type(exc).__name__}: {exc}") from exc
    for row in sorted(rows, key=lambda r: r["secret"]):
        print(row["secret"])
    print(f"{len(rows)} secret(s) under {prefix}/ at {_where(client)}", file=sys.stderr)
    return 0


def run_get(args: argparse.Namespace) -> int:
    from dmhub_adapter_tools.cli import CommandError

    name = _secret_name(args)
    client = _client()
    try:
        value = json.loads(client.get_secret_value(SecretId=name)["SecretString"])
    except client.exceptions.ResourceNotFoundException as exc:
        raise CommandError(f"no secret {name} at {_where(client)}") from exc
    except Exception as exc:
        raise CommandError(f"cannot read {name}: {type(exc).__name__}: {exc}") from exc
    json.dump({"secret": name, "value": value if args.show else redact(value)}, sys.stdout, ensure_ascii=False,
              indent=2)
    sys.stdout.write("\n")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from dmhub_adapter_tools.cli import CommandError

    name = _secret_name(args)
    client = _client()
    options: dict[str, Any] = ({"ForceDeleteWithoutRecovery": True} if args.force
                               else {"RecoveryWindowInDays": 7})
    try:
        client.delete_secret(SecretId=name, **options)
    except client.exceptions.ResourceNotFoundException as exc:
        raise CommandError(f"no secret {name} at {_where(client)}") from exc
    except Exception as exc:
        raise CommandError(f"cannot delete {name}: {type(exc).__name__}: {exc}") from exc
    how = "deleted" if args.force else "scheduled for deletion in 7 days (restore-secret undoes it)"
    print(f"{name} {how} at {_where(client)}", file=sys.stderr)
    return 0
