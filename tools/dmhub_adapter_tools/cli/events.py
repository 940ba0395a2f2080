"""``dmhub-adapter events get ID`` / ``events query ...``: read DM Hub's CustomerEvents back.

Credentials come from ``DMHUB_APP_ID``/``DMHUB_SECRET`` when both are set, else from the
secret ``{SECRETS_PREFIX}/dmhub``; the API root from ``DMHUB_BASE_URL``. DM Hub keeps one
valid token per app, so when ``IDEMPOTENCY_TABLE`` is set the command uses the token the
senders share (a token of its own would log the senders out); without it, it fetches one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "events",
        help="read CustomerEvents back from DM Hub (get one, or query)",
        description="Read DM Hub's CustomerEvents and print them as JSON. Credentials: DMHUB_APP_ID and "
        "DMHUB_SECRET, else the secret {SECRETS_PREFIX}/dmhub; API root: DMHUB_BASE_URL. With "
        "IDEMPOTENCY_TABLE set the senders' shared access token is used.",
    )
    commands = parser.add_subparsers(dest="events_command", metavar="{get,query}", required=True)

    get = commands.add_parser("get", help="one event by id")
    get.add_argument("id", type=int, help="DM Hub event id")
    get.add_argument("--partition", help="history partition (2018 default, 2017, 2016 = before 2017)")
    get.set_defaults(func=run_get)

    query = commands.add_parser("query", help="events matching filters")
    query.add_argument("--customer-id", type=int)
    query.add_argument("--event", help="event types, comma separated")
    query.add_argument("--from", dest="last_updated_from", help="lastUpdatedFrom, UTC like 2024-01-01T00:00:00Z")
    query.add_argument("--to", dest="last_updated_to", help="lastUpdatedTo, UTC like 2024-12-31T23:59:59Z")
    query.add_argument("--partition")
    query.add_argument("--max", type=int, help="show this many events, newest first (1-1000, default 20)")
    query.add_argument("--rows", type=int, help="page size")
    query.add_argument("--page", type=int, help="page number, from 1")
    query.add_argument("--sidx", help="sort field, e.g. lastUpdated")
    query.add_argument("--sord", choices=["asc", "desc"])
    query.add_argument("--oldest-first", action="store_true", help="oldest events first (default: newest first)")
    query.set_defaults(func=run_query)


class FetchedToken:
    """A token fetched for this command alone (no shared table available)."""

    def __init__(self, client: Any, app_id: str, secret: str) -> None:
        self.client, self.app_id, self.secret = client, app_id, secret
        self.token: str | None = None

    def get(self, *, deadline: float | None = None) -> str:
        if self.token is None:
            self.token = self.client.fetch_token(self.app_id, self.secret).access_token
        return self.token

    def renew(self, rejected: str, *, deadline: float | None = None) -> str:
        self.token = None
        return self.get()


def dmhub_client_from_env() -> Any:
    """A DmhubClient for command-line use (see the module docstring for where things come from)."""
    from dmhub_adapter import aws
    from dmhub_adapter.dmhub.client import DmhubClient
    from dmhub_adapter.dmhub.errors import DmhubError
    from dmhub_adapter.dmhub.token import SharedToken
    from dmhub_adapter.secrets import DmhubCredentials, load_credentials
    from dmhub_adapter.settings import Settings
    from dmhub_adapter.store.tokens import TokenTable
    from dmhub_adapter_tools.cli import CommandError

    settings = Settings.from_env()
    try:
        app_id, secret = os.environ.get("DMHUB_APP_ID"), os.environ.get("DMHUB_SECRET")
        if app_id and secret:
            # a DM Hub whose secret is not in AWS (command-line use)
            credentials = DmhubCredentials(app_id=app_id, secret=secret)
        else:
            credentials = load_credentials(settings.secret_name("dmhub"))
    except DmhubError as exc:
        raise CommandError(f"no DM Hub credentials: {exc.message} (or set DMHUB_APP_ID and DMHUB_SECRET)") from exc
    except Exception as exc:
        raise CommandError(f"cannot read the DM Hub secret: {type(exc).__name__}: {exc}") from exc
    http = DmhubClient(settings.dmhub_base_url)
    if settings.idempotency_table:
        # the senders' shared token: fetching a new one would log every sender out
        return http.with_token_source(SharedToken(
            store=TokenTable(settings.idempotency_table, aws.dynamodb(), app_id=credentials.app_id),
            fetch=lambda: http.fetch_token(credentials.app_id, credentials.secret),
        ))
    return http.with_token_source(FetchedToken(http, credentials.app_id, credentials.secret))


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _call(action: Any) -> Any:
    from dmhub_adapter.dmhub.errors import DmhubError
    from dmhub_adapter_tools.cli import CommandError

    try:
        return action()
    except DmhubError as exc:
        raise CommandError(exc.describe()) from exc
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def run_get(args: argparse.Namespace) -> int:
    client = dmhub_client_from_env()
    with client:
        event = _call(lambda: client.get_event(args.id, partition=args.partition))
    print_json(event.model_dump(mode="json"))
    return 0


def run_query(args: argparse.Namespace) -> int:
    from dmhub_adapter.model.customer_event import parse_dmhub_date
    from dmhub_adapter_tools.cli import CommandError

    for name in ("last_updated_from", "last_updated_to"):
        value = getattr(args, name)
        if value is not None:
            try:
                parse_dmhub_date(value)
            except ValueError as exc:
                raise CommandError(f"--{'from' if name.endswith('from') else 'to'}: {exc}") from exc
    if args.max is not None and not 1 <= args.max <= 1000:
        raise CommandError("--max must be between 1 and 1000")
    # DM Hub answers the oldest 20 by default and says nothing of the rest. Unless the caller
    # pages or sorts itself, ask for up to 1,000, newest first, show --max and say how many
    # there were.
    raw = args.rows is not None or args.page is not None or args.sidx is not None or args.sord is not None
    shown = args.max or QUERY_DEFAULT
    client = dmhub_client_from_env()
    with client:
        events = _call(
            lambda: client.query_events(
                customer_id=args.customer_id,
                event=args.event,
                last_updated_from=args.last_updated_from,
                last_updated_to=args.last_updated_to,
                partition=args.partition,
                max=args.max if raw else QUERY_LIMIT,
                rows=args.rows,
                page=args.page,
                sidx=args.sidx if raw else "id",
                sord=args.sord if raw else ("asc" if args.oldest_first else "desc"),
            )
        )
    if not raw:
        total = len(events)
        events = events[:shown]
        order = "oldest" if args.oldest_first else "newest"
        more = "1,000 or more" if total >= QUERY_LIMIT else str(total)
        hint = "" if len(events) == total else " (--max N for more)"
        print(f"showing {len(events)} of {more} event(s), {order} first{hint}", file=sys.stderr)
    print_json([event.model_dump(mode="json") for event in events])
    return 0


#: events shown when --max is not given (DM Hub's own default page)
QUERY_DEFAULT = 20
#: the most one query answers
QUERY_LIMIT = 1000
