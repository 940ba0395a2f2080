"""``dmhub-adapter accounts put SOURCE ACCOUNT --from-json FILE``: write an account's secret.

Writes ``{SECRETS_PREFIX}/{SOURCE}/{ACCOUNT}`` (created, or a new version when it exists) to
Secrets Manager — AWS, or the local stack through ``AWS_ENDPOINT_URL``. The DM Hub
credentials are one secret, ``{SECRETS_PREFIX}/dmhub``: write them with
``accounts put dmhub --from-json FILE`` (no ACCOUNT). Known sources are checked for the keys
their adapter reads; the secret's values are never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

WECHAT_AES_KEY_LENGTH = 43


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "accounts",
        help="manage account secrets in Secrets Manager",
        description="Account secrets live in Secrets Manager under {SECRETS_PREFIX}/{source}/{account}; "
        "the DM Hub credentials under {SECRETS_PREFIX}/dmhub.",
    )
    commands = parser.add_subparsers(dest="accounts_command", metavar="{put}", required=True)
    put = commands.add_parser(
        "put",
        help="create or update an account's secret",
        description="Write the JSON object in FILE as the secret {SECRETS_PREFIX}/SOURCE/ACCOUNT. "
        "SOURCE dmhub writes {SECRETS_PREFIX}/dmhub and takes no ACCOUNT. wechat needs token "
        "(encodingAesKey of 43 characters for compatible/safe mode, appId); taobao needs appKey and "
        "appSecret; dmhub needs appId and secret.",
    )
    put.add_argument("source", help="wechat, taobao, a configured source, or dmhub")
    put.add_argument("account", nargs="?", help="account name (not with dmhub)")
    put.add_argument("--from-json", dest="from_json", required=True, help="JSON file ('-' for standard input)")
    put.set_defaults(func=run_put)


def check_secret(source: str, value: Any) -> list[str]:
    """Problems with a secret for ``source`` (empty when it looks usable)."""
    if not isinstance(value, dict) or not value:
        return ["the secret must be a non-empty JSON object"]
    problems: list[str] = []

    def need(*names: str) -> None:
        for name in names:
            if not isinstance(value.get(name), str) or not value[name]:
                problems.append(f"{source} secrets need a non-empty string {name!r}")

    if source == "dmhub":
        need("appId", "secret")
    elif source == "wechat":
        need("token")
        aes = value.get("encodingAesKey")
        if aes not in (None, "") and (not isinstance(aes, str) or len(aes) != WECHAT_AES_KEY_LENGTH):
            problems.append(f"encodingAesKey must be {WECHAT_AES_KEY_LENGTH} characters")
        app_id = value.get("appId")
        if app_id is not None and not isinstance(app_id, str):
            problems.append("appId must be a string")
    elif source == "taobao":
        need("appKey", "appSecret")
    return problems


def run_put(args: argparse.Namespace) -> int:
    from dmhub_adapter.settings import Settings
    from dmhub_adapter_tools.cli import CommandError

    source = args.source.strip().lower()
    if source == "dmhub":
        if args.account:
            raise CommandError("dmhub credentials are one secret: use `accounts put dmhub --from-json FILE`")
    elif not args.account:
        raise CommandError(f"give the account name: accounts put {source} ACCOUNT --from-json FILE")
    elif "/" in args.account or "/" in source:
        raise CommandError("source and account names cannot contain '/'")
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
    problems = check_secret(source, value)
    if problems:
        raise CommandError("; ".join(problems))
    settings = Settings.from_env()
    name = settings.secret_name("dmhub") if source == "dmhub" else settings.secret_name(source, args.account)
    import boto3

    from dmhub_adapter_tools.local.resources import put_secret

    try:
        put_secret(boto3.session.Session(), name, value)
    except Exception as exc:
        raise CommandError(f"cannot write {name}: {type(exc).__name__}: {exc}") from exc
    json.dump({"secret": name, "keys": sorted(value)}, sys.stdout)
    sys.stdout.write("\n")
    return 0
