"""The pipeline's own decisions, with the AWS-facing parts replaced (moto runs are integration)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dmhub_adapter.errors import NotFound
from dmhub_adapter.ingest import unmapped
from dmhub_adapter.ingest.handoff import HandoffResult
from dmhub_adapter.ingest.outcome import RequestOutcome
from dmhub_adapter.ingest.pipeline import IngestPipeline
from dmhub_adapter.ingest.unmapped import UnmappedQueue
from dmhub_adapter.mapping.config import parse_mapping
from dmhub_adapter.model.customer_event import QueuedEvent
from dmhub_adapter.observability import RecordingMetrics, observing
from dmhub_adapter.settings import IngestSettings
from dmhub_adapter.sources.base import Inbound, MessageRejection
from dmhub_adapter.sources.generic import GenericSource
from dmhub_adapter.webhook import WebhookRequest

MAPPING = parse_mapping("""
source: acme
verification: {scheme: none}
messages: "events || [@]"
defaults:
  identity: {type: acme-user, value: user}
rules:
  - name: order
    when: "type == 'order'"
    event: c_acme_order
    externalId: id
    date: {path: at, convert: unix_seconds}
""", "<acme>")
SOURCE = GenericSource(MAPPING)


class FakeSecrets:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def account_secret(self, source: str, account: str) -> dict[str, Any]:
        self.calls.append((source, account))
        if account == "ghost":
            raise NotFound("unknown account")
        return {}


class FakeHandoff:
    def __init__(self, result: HandoffResult | None = None) -> None:
        self.result = result or HandoffResult()
        self.submitted: list[tuple[list[QueuedEvent], float | None, float | None]] = []

    def submit(self, events: list[QueuedEvent], *, lease_seconds: float | None = None,
               wait_seconds: float | None = None) -> HandoffResult:
        self.submitted.append((list(events), lease_seconds, wait_seconds))
        if self.result.enqueued == 0 and self.result.in_flight == 0:
            return HandoffResult(enqueued=len(events))
        return self.result


def pipeline(handoff: FakeHandoff | None = None, **settings: Any) -> tuple[IngestPipeline, FakeSecrets, FakeHandoff]:
    secrets, handoff = FakeSecrets(), handoff or FakeHandoff()
    built = IngestPipeline(
        IngestSettings(idempotency_table="t", event_queue_url="events", unmapped_queue_url="unmapped", **settings),
        secrets=secrets,  # type: ignore[arg-type]
        handoff=lambda: handoff,  # type: ignore[arg-type,return-value]
        unmapped=lambda: UnmappedQueue("unmapped", None),  # type: ignore[arg-type]
        source_lookup=lambda name: SOURCE if name == "acme" else None,
    )
    return built, secrets, handoff


def post(body: Any, *, account: str = "shop1", source: str = "acme", method: str = "POST") -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(method=method, source=source, account=account, body=raw,
                          headers={"content-type": "application/json"}, received_at=1732780800.0,
                          request_id="req-1")


def order(order_id: str) -> dict[str, Any]:
    return {"type": "order", "id": order_id, "user": "u1", "at": 1732780800}


def test_events_become_queued_events_with_their_claim_keys_and_trace_id() -> None:
    ingest, _, handoff = pipeline()

    response = ingest.handle(post({"events": [order("o1"), order("o2")]}), remaining_ms=3000)

    assert response.status == 200
    ((events, lease, wait),) = handoff.submitted
    assert [e.claim_key for e in events] == ["acme#shop1#o1", "acme#shop1#o2"]
    assert {e.trace_id for e in events} == {"req-1"} and events[0].rule == "order"
    assert lease == pytest.approx(3.0, abs=0.1)  # the lease ends when the invocation would
    assert wait == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize(("remaining_ms", "lease", "wait"), [(None, None, 2.0), (60_000, 30.0, 2.0), (1_200, 1.2, 0.2)])
def test_lease_and_wait_follow_the_remaining_time(remaining_ms: int | None, lease: float | None, wait: float) -> None:
    ingest, _, handoff = pipeline()

    ingest.handle(post(order("o1")), remaining_ms=remaining_ms)

    ((_, got_lease, got_wait),) = handoff.submitted
    assert got_lease == pytest.approx(lease, abs=0.05) if lease else got_lease is None
    assert got_wait == pytest.approx(wait, abs=0.05)


def test_the_body_cap_is_checked_before_any_secret_is_read() -> None:
    ingest, secrets, handoff = pipeline(max_body_bytes=10)

    response = ingest.handle(post(order("o1")))

    assert response.status == 413 and secrets.calls == [] and handoff.submitted == []


@pytest.mark.parametrize(("source", "account"), [("nope", "shop1"), ("acme", "ghost"), ("", "shop1"), ("acme", "")])
def test_unknown_routes_are_404_json_and_counted(source: str, account: str) -> None:
    ingest, _, _ = pipeline()
    metrics = RecordingMetrics()

    response = ingest.handle(post(order("o1"), source=source, account=account), metrics=metrics)

    assert response.status == 404 and json.loads(response.body)["error"] == "not_found"
    assert metrics.counts["Rejected:not_found"] == 1
    assert metrics.source == ("acme" if source == "acme" and account else None)  # never a made-up name


def test_a_claim_in_flight_elsewhere_is_503_after_the_rest_is_secured(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(unmapped, "send_messages", lambda url, messages, client=None: sent.extend(messages) or ["m"])
    ingest, _, _ = pipeline(FakeHandoff(HandoffResult(enqueued=1, in_flight=1)))
    metrics = RecordingMetrics()

    response = ingest.handle(post({"events": [order("o1"), order("o2"), {"type": "x", "user": "u"}]}),
                             metrics=metrics)

    assert response.status == 503 and json.loads(response.body)["error"] == "unavailable"
    assert len(sent) == 1  # the unmapped message was kept before answering 503
    assert metrics.counts["Unavailable:claim_in_flight"] == 1 and metrics.counts["Enqueued"] == 1


def test_message_rejections_are_kept_with_the_unmapped_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(unmapped, "send_messages", lambda url, messages, client=None: sent.extend(messages) or ["m"])
    ingest, _, _ = pipeline()
    request = post({"events": [order("o1"), {"type": "refund", "user": "u"}]})
    inbound = Inbound(messages=[order("o1"), {"type": "refund", "user": "u"}], payload=request.body,
                      rejected=[MessageRejection(index=2, reason="missing topic")])
    metrics = RecordingMetrics()

    delivery = ingest.deliver(request, SOURCE, inbound, metrics=metrics)

    assert delivery.reasons == ["message #2: no rule matched this message", "message #3: rejected: missing topic"]
    assert (delivery.outcome.enqueued, delivery.outcome.unmapped, len(delivery.outcome.rejected)) == (1, 1, 1)
    assert sent[0].body["reasons"] == delivery.reasons
    assert sent[0].attributes["reason"] == "message #2: no rule matched this message"
    assert metrics.counts["Rejected:message"] == 1 and metrics.counts["Unmapped"] == 1


def test_an_unexpected_error_is_a_generic_503() -> None:
    def broken(name: str) -> Any:
        raise ZeroDivisionError("secret internals")

    settings = IngestSettings(idempotency_table="t", event_queue_url="events", unmapped_queue_url="unmapped")
    ingest = IngestPipeline(
        settings,
        secrets=FakeSecrets(),  # type: ignore[arg-type]
        handoff=FakeHandoff,  # type: ignore[arg-type]
        unmapped=lambda: UnmappedQueue("unmapped", None),  # type: ignore[arg-type]
        source_lookup=broken,
    )
    metrics = RecordingMetrics()

    response = ingest.handle(post(order("o1")), metrics=metrics)

    assert response.status == 503 and "internals" not in response.body
    assert metrics.counts["Unavailable:internal"] == 1


# -- the request's outcome, as the local gateway observes it ---------------------------------------

SKIPPING = GenericSource(parse_mapping("""
source: acme
verification: {scheme: none}
messages: "events || [@]"
defaults:
  identity: {type: acme-user, value: user}
rules:
  - name: ping
    when: "type == 'ping'"
    skip: pings carry no customer event
  - name: order
    when: "type == 'order'"
    event: c_acme_order
    externalId: id
    date: {path: at, convert: unix_seconds}
""", "<acme>"))


def observed(ingest: IngestPipeline, request: WebhookRequest) -> tuple[int, RequestOutcome]:
    seen: list[RequestOutcome] = []
    with observing(seen.append):
        response = ingest.handle(request)
    assert len(seen) == 1
    return response.status, seen[0]


def test_the_outcome_counts_each_message_and_names_the_externalids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unmapped, "send_messages", lambda url, messages, client=None: ["m"])
    ingest, _, _ = pipeline()
    ingest._source_lookup = lambda name: SKIPPING if name == "acme" else None
    body = {"events": [order("o1"), {"type": "ping", "user": "u"}, {"type": "refund", "user": "u"}, order("o2")]}

    status, outcome = observed(ingest, post(body))

    assert status == 200 and outcome.status == 200
    assert outcome.counts() == {"enqueued": 2, "duplicate": 0, "skipped": 1, "unmapped": 1, "refused": 0}
    assert outcome.external_ids == ["acme:shop1:o1", "acme:shop1:o2"]
    assert outcome.reason == ("message #3: no rule matched this message; "
                              "message #2 skipped: rule 'ping': pings carry no customer event")


def test_a_refused_request_is_one_refusal_with_its_code() -> None:
    ingest, _, _ = pipeline(max_body_bytes=10)

    status, outcome = observed(ingest, post(order("o1")))

    assert status == 413 and outcome.refused == 1 and outcome.enqueued == 0
    assert outcome.reason is not None and outcome.reason.startswith("payload_too_large: body exceeds 10 bytes")


def test_duplicates_are_counted_apart_from_enqueued() -> None:
    ingest, _, _ = pipeline()
    ingest._make_handoff = FakeDuplicates  # type: ignore[assignment]

    _, outcome = observed(ingest, post(order("o1")))

    assert (outcome.enqueued, outcome.duplicate) == (0, 1) and outcome.external_ids == ["acme:shop1:o1"]


class FakeDuplicates:
    def submit(self, events: list[QueuedEvent], **_: Any) -> HandoffResult:
        return HandoffResult(duplicates=len(events))


def test_nobody_observing_is_fine_and_an_observer_that_fails_does_not_fail_the_request() -> None:
    ingest, _, _ = pipeline()
    assert ingest.handle(post(order("o1"))).status == 200

    def broken(_: RequestOutcome) -> None:
        raise RuntimeError("observer bug")

    with observing(broken):
        assert ingest.handle(post(order("o2"))).status == 200
