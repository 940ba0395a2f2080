"""Dry-run mapping (``dmhub-adapter map``): payload → CustomerEvents, no signatures, no AWS."""

from __future__ import annotations

import json
import time
from typing import Any

from dmhub_adapter.apigw import is_apigw_v2_event, request_from_event
from dmhub_adapter.errors import WebhookError
from dmhub_adapter.mapping.config import MappingConfigError, available_sources
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.sources.base import Account
from dmhub_adapter.webhook import WebhookRequest


class DryRunError(Exception):
    """Why a payload cannot be mapped (shown to the user as is)."""


def _request(source: str, account: str, data: bytes) -> WebhookRequest:
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = None
    if is_apigw_v2_event(parsed):
        request = request_from_event(parsed)
        return WebhookRequest(
            method=request.method,
            source=source,
            account=account,
            body=request.body,
            query=request.query,
            raw_query=request.raw_query,
            headers=request.headers,
            path=request.path,
            received_at=request.received_at,
            request_id=request.request_id,
        )
    return WebhookRequest(method="POST", source=source, account=account, body=data, received_at=time.time())


def preview_messages(adapter: Any, request: WebhookRequest, secret: Any = None,
                     record: Any = None) -> list[dict[str, Any]]:
    """What a delivery of ``request`` would become, per message, with today's mapping and no
    side effect: ``deliver`` (the events with their DM Hub externalIds), ``skip``, ``unmapped`` or
    ``rejected`` with the reason (``record``: the unmapped record it was rebuilt from, whose kept
    request values fill gaps). Raises :class:`DryRunError` when the payload does not parse."""
    from pydantic import ValidationError

    from dmhub_adapter.ingest.external_ids import namespaced
    from dmhub_adapter.validation import error_message

    try:
        inbound = adapter.parse_unverified(request, Account(adapter.name, request.account, adapter.mapping, secret))
    except WebhookError as exc:
        raise DryRunError(f"the payload cannot be parsed: {exc.message}") from exc
    if record is not None:
        from dmhub_adapter_tools.replay import restore_request_values

        restore_request_values(record, inbound)
    meta = {"source": adapter.name, "account": request.account, "received_at": int(request.received_at)}
    previews: list[dict[str, Any]] = []
    for index, result in enumerate(map_payload(adapter.mapping, inbound.messages, meta), 1):
        entry: dict[str, Any] = {"message": index, "rule": result.rule}
        if result.status == "mapped":
            try:
                entry["events"] = [
                    {"event": mapped.event.event,
                     "externalId": namespaced(mapped.event, adapter.name, request.account).externalId}
                    for mapped in result.events
                ]
                entry["status"] = "deliver"
            except ValidationError as exc:
                entry["status"] = "unmapped"
                entry["reason"] = "; ".join(error_message(e) for e in exc.errors())
        else:
            entry["status"] = "skip" if result.status == "skipped" else "unmapped"
            entry["reason"] = result.reason
        previews.append(entry)
    for rejection in inbound.rejected:
        previews.append({"message": rejection.index + 1, "status": "rejected", "reason": rejection.reason})
    return previews


def dry_run(source: str, data: bytes, *, account: str = "demo", accounts_file: str | None = None,
            headers: dict[str, str] | None = None, query: dict[str, str] | None = None,
            skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """The CustomerEvents ``data`` maps to (``headers``/``query`` as the request would carry them);
    the reason of each skipped message is appended to ``skipped``."""
    from dmhub_adapter.settings import Settings
    from dmhub_adapter.sources.registry import source_for
    from dmhub_adapter_tools.local.accounts import load_accounts

    mappings_dir = Settings.from_env().mappings_dir
    try:
        adapter = source_for(source, mappings_dir)
    except MappingConfigError as exc:
        raise DryRunError(f"the mapping config of {source!r} is invalid: {exc}") from exc
    if adapter is None:
        raise DryRunError(f"unknown source {source!r}; known: {', '.join(available_sources(mappings_dir)) or 'none'}")
    try:
        secret = load_accounts(accounts_file).secret(source, account)
    except (OSError, ValueError) as exc:
        raise DryRunError(f"cannot read the accounts file: {exc}") from exc
    request = _request(source, account, data)
    if headers or query:
        from urllib.parse import urlencode

        merged_query = {**request.query, **(query or {})}
        request = WebhookRequest(
            method=request.method, source=source, account=account, body=request.body, query=merged_query,
            raw_query=urlencode(merged_query), headers={**request.headers, **{k.lower(): v for k, v in
                                                                               (headers or {}).items()}},
            path=request.path, received_at=request.received_at, request_id=request.request_id,
        )
    try:
        inbound = adapter.parse_unverified(request, Account(source, account, adapter.mapping, secret))
    except WebhookError as exc:
        raise DryRunError(f"the payload cannot be parsed: {exc.message}") from exc
    problems = [f"message #{r.index + 1}: {r.reason}" for r in inbound.rejected]
    results = map_payload(adapter.mapping, inbound.messages, {"source": source, "account": account})
    events: list[dict[str, Any]] = []
    for index, result in enumerate(results, 1):
        if result.status == "unmapped":
            problems.append(f"message #{index}: unmapped: {result.reason}")
        if result.status == "skipped" and skipped is not None:
            skipped.append(f"message #{index} skipped by rule {result.rule!r}: {result.reason}")
        for mapped in result.events:
            events.append(
                {
                    "rule": mapped.rule,
                    "identity": mapped.identity.model_dump(exclude_none=True) if mapped.identity else None,
                    "event": mapped.event.to_request(),
                }
            )
    if problems:
        raise DryRunError("; ".join(problems))
    return events
