"""The ingest pipeline, generic over source adapters: one request in, one response out.

Order of work for ``POST /webhooks/{source}/{account}``:

1. the source's mapping and adapter (unknown source → 404; a broken config → 503);
2. body cap (the source's own cap where its mapping sets one, else ``MAX_BODY_BYTES`` → 413);
3. the account's secret (unknown account → 404; Secrets Manager failing → 503);
4. ``source.receive``: verify, decrypt, parse (the adapter's 4xx pass through unchanged), then
   the mapping's account binding (:mod:`~dmhub_adapter.ingest.tenancy`, 403);
5. ``map_payload``: each message mapped, skipped or unmapped; every mapped event is wrapped in a
   queued event (:func:`queued_event`) keyed ``{source}#{account}#{externalId}``;
6. :class:`~dmhub_adapter.ingest.handoff.Handoff`: claim, enqueue, mark QUEUED (duplicates are
   acknowledged and counted, failures give their claims back and answer 503);
7. anything unmapped or refused per message → one record on the UnmappedQueue
   (:mod:`~dmhub_adapter.ingest.unmapped`), still answered with success;
8. ``source.reply`` in the platform's dialect.

``GET`` runs 1 and 3 and answers ``source.handshake``. Every refusal is a
:class:`~dmhub_adapter.errors.WebhookError` answered through ``source.error_reply``; anything
unexpected is logged with its stack and answered 503 with a generic JSON body, so the platform
retries rather than seeing a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dmhub_adapter.errors import MethodNotAllowed, NotFound, PayloadTooLarge, Unavailable, WebhookError
from dmhub_adapter.ingest.errors import GENERIC_MESSAGE, DependencyUnavailable
from dmhub_adapter.ingest.handoff import Handoff, HandoffResult
from dmhub_adapter.ingest.metrics import MESSAGE_REJECTED, Metric
from dmhub_adapter.ingest.outcome import RequestOutcome
from dmhub_adapter.ingest.tenancy import check_account_binding, source_body_cap
from dmhub_adapter.ingest.unmapped import UnmappedQueue
from dmhub_adapter.observability import MetricsSink, NullMetrics, publish_outcome
from dmhub_adapter.records import field, record
from dmhub_adapter.secrets import SecretStore
from dmhub_adapter.settings import IngestSettings
from dmhub_adapter.sources.base import Account, Inbound, IngestOutcome, RequestNames, Source
from dmhub_adapter.store.signature_binding import Binder
from dmhub_adapter.webhook import WebhookRequest, WebhookResponse, json_response

if TYPE_CHECKING:
    from dmhub_adapter.ingest.handoff import AnyQueuedEvent
    from dmhub_adapter.mapping.engine import MappedEvent
    from dmhub_adapter.model.rules import AttributeBudget

logger = logging.getLogger(__name__)

#: time kept back from the invocation's remaining time for answering after a wait
_ANSWER_RESERVE = 1.0


@record
class Delivery:
    """What became of an authentic payload: the outcome and, per message, why any was not mapped."""

    outcome: IngestOutcome
    reasons: list[str] = field(default_factory=list)
    #: why messages were skipped (not kept: a skip is the mapping's decision, not a loss)
    skip_reasons: list[str] = field(default_factory=list)
    #: the DM Hub externalIds of the events handed over (enqueued or already claimed)
    external_ids: list[str] = field(default_factory=list)


class QueuedEventError(ValueError):
    """A mapped event cannot be queued: wrapped for the queue it breaks DM Hub's rules (no
    identity and no customer, attribute kinds beyond the budget); ``str()`` says why."""


def queued_event(
    source: str, request: WebhookRequest, mapped: MappedEvent, attribute_budget: AttributeBudget
) -> AnyQueuedEvent:
    """The queued event one mapped event becomes: claim key from the mapping's own externalId,
    the event's externalId namespaced for DM Hub, checked against the budget as pydantic's
    :class:`~dmhub_adapter.model.customer_event.QueuedEvent` checks it.

    Built plainly (a :class:`~dmhub_adapter.model.wire.WireQueuedEvent`) when the event's values
    are of JSON's own types and it passes; otherwise the pydantic model decides and words the
    refusal. Raises :class:`QueuedEventError` when the event breaks DM Hub's rules.

    Example::

        message = queued_event("wechat", request, mapped, settings.attribute_budget).to_message()
    """
    from dmhub_adapter.ingest.external_ids import dmhub_external_id
    from dmhub_adapter.model.rules import check_deliverable
    from dmhub_adapter.model.wire import WireQueuedEvent, read_attribute_kinds
    from dmhub_adapter.store.claims import claim_key

    external_id = mapped.checked.externalId
    key = claim_key(source, request.account, str(external_id))
    if mapped.plain:
        event = mapped.checked
        if external_id:
            event = event.with_external_id(dmhub_external_id(source, request.account, external_id))
        try:
            kinds = read_attribute_kinds(mapped.attribute_kinds)
            check_deliverable(
                has_identity=mapped.checked_identity is not None,
                customer_id=event.customerId,
                external_id=event.externalId,
                attributes=event.extras,
                attribute_kinds=kinds,
                budget=attribute_budget,
            )
        except ValueError:
            pass  # the model below words the refusal
        else:
            return WireQueuedEvent(
                source=source, account=request.account, claim_key=key, event=event,
                identity=mapped.checked_identity, trace_id=request.request_id, rule=mapped.rule,
                attribute_kinds=kinds,
            )
    return _queued_model(source, request, mapped, key, attribute_budget)


def _queued_model(
    source: str, request: WebhookRequest, mapped: MappedEvent, key: str, attribute_budget: AttributeBudget
) -> AnyQueuedEvent:
    from pydantic import ValidationError

    from dmhub_adapter.ingest.external_ids import namespaced
    from dmhub_adapter.model.customer_event import ATTRIBUTE_BUDGET_CONTEXT, QueuedEvent
    from dmhub_adapter.validation import error_message

    try:
        return QueuedEvent.model_validate(
            {
                "source": source,
                "account": request.account,
                "claim_key": key,
                "trace_id": request.request_id,
                "rule": mapped.rule,
                "identity": mapped.identity,
                "event": namespaced(mapped.event, source, request.account),
                "attribute_kinds": mapped.attribute_kinds,
            },
            context={ATTRIBUTE_BUDGET_CONTEXT: attribute_budget},
        )
    except ValidationError as exc:
        raise QueuedEventError("; ".join(error_message(e) for e in exc.errors())) from exc


class IngestPipeline:
    """The ingest's logic, holding what a warm container reuses: settings, the secret cache,
    the claim hand-off. Built by :func:`dmhub_adapter.ingest.bootstrap.build_pipeline`.

    Example::

        pipeline = build_pipeline(IngestSettings.from_env())
        response = pipeline.handle(request_from_event(event), remaining_ms=context.get_remaining_time_in_millis())
    """

    def __init__(
        self,
        settings: IngestSettings,
        *,
        secrets: SecretStore,
        handoff: Callable[[], Handoff],
        unmapped: Callable[[], UnmappedQueue],
        signature_binding: Callable[[], Binder] | None = None,
        source_lookup: Callable[[str], Source | None] | None = None,
        log: Any | None = None,
    ) -> None:
        self.settings = settings
        self.log = log or logger
        self.secrets = secrets
        self._make_handoff = handoff
        self._make_unmapped = unmapped
        self._handoff: Handoff | None = None
        self._unmapped: UnmappedQueue | None = None
        self._make_binding = signature_binding
        self._binding: Binder | None = None
        self._source_lookup = source_lookup
        self.pending_wait = settings.claim_wait_seconds

    # -- collaborators, created on first use (a GET handshake needs neither DynamoDB nor SQS)

    @property
    def handoff(self) -> Handoff:
        """The claim → enqueue → mark hand-off (built on first use)."""
        if self._handoff is None:
            self._handoff = self._make_handoff()
        return self._handoff

    @property
    def unmapped(self) -> UnmappedQueue:
        """Where authentic payloads that did not map are kept (built on first use)."""
        if self._unmapped is None:
            self._unmapped = self._make_unmapped()
        return self._unmapped

    @property
    def signature_binding(self) -> Binder | None:
        """Where sources bind signatures to bodies (built on first use), if configured."""
        if self._binding is None and self._make_binding is not None:
            self._binding = self._make_binding()
        return self._binding

    def source(self, name: str) -> Source:
        """The adapter for ``name``; :class:`NotFound` when no mapping defines it, 503 when its
        mapping file cannot be used."""
        from dmhub_adapter.mapping.files import MappingConfigError

        try:
            if self._source_lookup is not None:
                found = self._source_lookup(name)
            else:
                from dmhub_adapter.sources.registry import source_for

                found = source_for(name, self.settings.mappings_dir, budget=self.settings.attribute_budget)
        except (MappingConfigError, LookupError) as exc:
            # A deployment problem, not the caller's: 503 so deliveries are retried after the fix.
            self.log.error("mapping config of source %r cannot be used: %s", name, exc)
            raise DependencyUnavailable("mapping_config") from exc
        if found is None:
            raise NotFound(f"unknown source {name!r}")
        return found

    # -- the request

    def handle(
        self,
        request: WebhookRequest,
        *,
        remaining_ms: int | None = None,
        metrics: MetricsSink | None = None,
    ) -> WebhookResponse:
        """Answer one request: route, verify, map, claim and enqueue (see the module docstring);
        refusals come back as the source's error reply, never as an exception."""
        sink: MetricsSink = metrics or NullMetrics()
        outcome = RequestOutcome(source=request.source, account=request.account, method=request.method)
        response = self._handle(request, remaining_ms, sink, outcome)
        outcome.status = response.status
        self._report(outcome)
        return response

    def _handle(
        self, request: WebhookRequest, remaining_ms: int | None, sink: MetricsSink, outcome: RequestOutcome
    ) -> WebhookResponse:
        source: Source | None = None
        try:
            if not request.source or not request.account:
                raise NotFound("no such route; use /webhooks/{source}/{account}")
            source = self.source(request.source)
            sink.set_source(source.name)
            if request.method not in ("GET", "POST"):
                raise MethodNotAllowed(f"{request.method} is not supported; use GET or POST")
            if request.method == "POST":
                sink.count(Metric.RECEIVED)
                cap = source_body_cap(source) or self.settings.max_body_bytes
                if len(request.body) > cap:
                    raise PayloadTooLarge(f"body exceeds {cap} bytes")
            secret = self.secrets.account_secret(source.name, request.account)
            account = Account(source.name, request.account, source.mapping, secret,
                              signature_binding=self.signature_binding)
            if request.method == "GET":
                response = source.handshake(request, account)
                sink.count(Metric.HANDSHAKE)
                return response
            inbound = source.receive(request, account)
            check_account_binding(account, inbound, log=self.log)
            delivery = self.deliver(request, source, inbound, remaining_ms=remaining_ms, metrics=sink)
            _fill(outcome, delivery)
            return source.reply(request, delivery.outcome)
        except WebhookError as exc:
            outcome.refused += 1
            outcome.reasons.append(f"{exc.code}: {getattr(exc, 'detail', exc.message)}")
            return self._refuse(request, source, exc, sink)
        except Exception:
            outcome.refused += 1
            outcome.reasons.append("internal error (see the function's log)")
            self.log.exception("ingest failed unexpectedly")
            sink.count(Metric.UNAVAILABLE, reason="internal")
            return json_response(503, {"error": Unavailable.code, "message": GENERIC_MESSAGE})

    def deliver(
        self,
        request: WebhookRequest,
        source: Source,
        inbound: Inbound,
        *,
        remaining_ms: int | None = None,
        metrics: MetricsSink | None = None,
        keep_unmapped: bool = True,
    ) -> Delivery:
        """Map an authentic payload and hand its events over; keep what did not map.

        Raises :class:`DependencyUnavailable` when the payload could not be fully secured
        (claim store, event queue or unmapped queue failing; a claim still in flight elsewhere).
        With ``keep_unmapped=False`` (replays) unmapped messages are only reported.
        """
        from dmhub_adapter.mapping.engine import map_payload

        sink: MetricsSink = metrics or NullMetrics()
        started = time.monotonic()
        meta = {"source": source.name, "account": request.account, "received_at": int(request.received_at)}
        results = map_payload(source.mapping, inbound.messages, meta)
        events: list[AnyQueuedEvent] = []
        reasons: list[str] = []
        skip_reasons: list[str] = []
        skipped = unmapped = 0
        for number, result in enumerate(results, 1):
            if result.status == "skipped":
                skipped += 1
                rule = f"rule {result.rule!r}: " if result.rule else ""
                skip_reasons.append(f"message #{number} skipped: {rule}{result.reason}")
                continue
            if result.status == "unmapped":
                unmapped += 1
                reasons.append(f"message #{number}: {result.reason}")
                continue
            try:
                built = [
                    queued_event(source.name, request, mapped, self.settings.attribute_budget)
                    for mapped in result.events
                ]
            except QueuedEventError as exc:
                unmapped += 1
                problem = str(exc)
                reasons.append(f"message #{number}: rule {result.rule!r}: {problem}")
                continue
            events.extend(built)
        for rejection in inbound.rejected:
            reasons.append(f"message #{rejection.index + 1}: rejected: {rejection.reason}")

        handed = HandoffResult()
        if events:
            lease, wait = self._budget(remaining_ms, started)
            handed = self.handoff.submit(events, lease_seconds=lease, wait_seconds=wait)
        sink.count(Metric.ENQUEUED, handed.enqueued)
        sink.count(Metric.DUPLICATE, handed.duplicates)
        sink.count(Metric.SKIPPED, skipped)
        sink.count(Metric.UNMAPPED, unmapped)
        sink.count(Metric.REJECTED, len(inbound.rejected), reason=MESSAGE_REJECTED)
        if reasons and keep_unmapped:
            from dmhub_adapter.ingest.unmapped import build_record

            self.unmapped.send(build_record(request, inbound, reasons, request_names(source)))
            self.log.info("payload kept on the unmapped queue", extra={"reasons": len(reasons)})
        if handed.in_flight:
            raise DependencyUnavailable("claim_in_flight")
        outcome = IngestOutcome(
            enqueued=handed.enqueued,
            duplicates=handed.duplicates,
            skipped=skipped,
            unmapped=unmapped,
            rejected=list(inbound.rejected),
        )
        return Delivery(
            outcome=outcome,
            reasons=reasons,
            skip_reasons=skip_reasons,
            external_ids=[str(e.event.externalId) for e in events if e.event.externalId],
        )

    def _report(self, outcome: RequestOutcome) -> None:
        """Log the request's outcome and hand it to whoever observes this context."""
        self.log.info("request outcome", extra=outcome.as_log())
        publish_outcome(outcome)

    def _budget(self, remaining_ms: int | None, started: float) -> tuple[float | None, float]:
        """Lease length and PENDING wait for this invocation (see :mod:`.handoff`)."""
        if remaining_ms is None:
            return None, self.pending_wait
        remaining = remaining_ms / 1000.0 - (time.monotonic() - started)
        lease = float(min(self.settings.claim_lease_seconds, max(1.0, remaining)))
        return lease, max(0.0, min(self.pending_wait, remaining - _ANSWER_RESERVE))

    def _refuse(
        self, request: WebhookRequest, source: Source | None, error: WebhookError, sink: MetricsSink
    ) -> WebhookResponse:
        if isinstance(error, Unavailable):
            reason = error.reason if isinstance(error, DependencyUnavailable) else error.code
            sink.count(Metric.UNAVAILABLE, reason=reason)
            self.log.warning("answering 503", extra={"reason": reason, "detail": error.message})
        else:
            sink.count(Metric.REJECTED, reason=error.code)
            self.log.info("request refused", extra={"status": error.status, "code": error.code,
                                                    "detail": getattr(error, "detail", error.message)})
        if source is not None:
            try:
                return source.error_reply(request, error)
            except Exception:
                self.log.exception("the adapter's error reply failed")
        return json_response(error.status, error.to_body())


def _fill(outcome: RequestOutcome, delivery: Delivery) -> None:
    """Copy a delivery's counts, reasons and externalIds into the request's outcome."""
    done = delivery.outcome
    outcome.enqueued += done.enqueued
    outcome.duplicate += done.duplicates
    outcome.skipped += done.skipped
    outcome.unmapped += done.unmapped
    outcome.refused += len(done.rejected)
    outcome.reasons.extend(delivery.reasons)
    outcome.reasons.extend(delivery.skip_reasons)
    outcome.external_ids.extend(delivery.external_ids)


def request_names(source: Source) -> RequestNames:
    """The request values ``source`` wants kept for a replay (none for an adapter that does
    not say)."""
    names = getattr(source, "request_names", None)
    return names() if callable(names) else RequestNames()
