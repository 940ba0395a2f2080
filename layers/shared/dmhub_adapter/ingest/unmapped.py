"""Authentic payloads the mapping could not (fully) turn into events, kept on the UnmappedQueue.

Nothing authentic is dropped: when a payload's messages match no rule, fail a conversion or
produce an event DM Hub would refuse, or an adapter refuses single messages inside it, the
whole clear-text payload goes to ``UNMAPPED_QUEUE_URL`` as one record, and the platform still
gets its success answer. If that send fails the request answers 503 so the platform retries.

A record (the SQS message body, JSON)::

    {
      "version": 1,
      "source": "acme", "account": "shop1",
      "payload": "<clear text>" | "<base64>", "payload_encoding": "utf-8" | "base64",
      "payload_type": "application/json",
      "headers": {"content-type": "...", ...},  # the content headers and the source's request_names
      "query": {"openid": "...", ...},          # the query values the source's request_names lists
      "reasons": ["message #2: no rule matched this message", ...],
      "received_at": 1732780800.123,            # epoch seconds, as received
      "request_id": "...",
      "context": {...}                          # the adapter's Inbound.context, if JSON-able
    }

A record larger than the queue takes (:data:`INLINE_MAX`; a signed Doudian array of 28k
messages makes 1.67 MB) is stored by reference: the whole record goes to the S3 bucket named
by ``UNMAPPED_BUCKET`` under ``unmapped/{source}/{account}/{yyyy}/{mm}/{dd}/…json`` and the
SQS message is a pointer record with ``payload_ref: {"bucket", "key"}`` instead of ``payload``
(and the first :data:`POINTER_REASONS` reasons). :func:`resolve_record` reads it back for a
replay. Without ``UNMAPPED_BUCKET`` such a request is refused with 413 and a reason naming the
variable: a 503 would be retried forever and never succeed.

The payload is what the adapter authenticated, decrypted where it was encrypted, so a replay
parses it again without signatures or keys (see :mod:`dmhub_adapter_tools.replay`). It holds
platform identities (openids, buyer ids): the queue is as sensitive as the table.

Besides the content headers, a record keeps the headers and query values the source says its
mapping can read or its verification names (``Source.request_names``: a header-routed event
type, a Standard Webhooks ``webhook-id`` feeding the externalId), so :func:`request_from_record`
rebuilds the request a live delivery was mapped from. Credentials are never kept, whatever a
source lists: ``Authorization``, cookies, and any name that reads as a signature, token, secret,
password or API key (:func:`is_secret_name`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dmhub_adapter.errors import PayloadTooLarge
from dmhub_adapter.ingest.errors import DependencyUnavailable
from dmhub_adapter.queue import EnqueueError, OutgoingMessage, send_messages
from dmhub_adapter.sources.base import Inbound, RequestNames
from dmhub_adapter.webhook import WebhookRequest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

RECORD_VERSION = 1
#: request headers a replay may need to parse the payload the same way (every source)
KEPT_HEADERS = ("content-type", "content-encoding", "user-agent")
#: header names never kept, whatever a source lists
NEVER_KEPT = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-amz-security-token"})
#: name fragments of credentials: a header or query parameter containing one is never kept
_SECRET_FRAGMENTS = ("signature", "token", "secret", "password", "api-key", "apikey", "api_key")
#: the longest header or query value kept (a value this long is not a routing key)
MAX_KEPT_VALUE = 1024
_REASON_ATTRIBUTE_MAX = 256
#: the largest record body sent inline: the queue takes 1 MiB (MaximumMessageSize) for body
#: and attributes together, so keep a margin for the attributes
INLINE_MAX = 1_000_000
#: the environment variable naming the bucket for records over INLINE_MAX
BUCKET_ENV = "UNMAPPED_BUCKET"
#: every object key starts with it (the ingest may write only there)
OBJECT_PREFIX = "unmapped/"
#: reasons a pointer record repeats (the rest are in the stored record)
POINTER_REASONS = 20


class RecordError(ValueError):
    """A record that is not an unmapped-payload record of a known version."""


def is_secret_name(name: str) -> bool:
    """Whether a header or query parameter may carry a credential (never kept in a record)."""
    lowered = name.lower()
    return lowered in NEVER_KEPT or lowered in ("sign", "sig") or any(f in lowered for f in _SECRET_FRAGMENTS)


def _kept(values: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: values[name][:MAX_KEPT_VALUE] for name in sorted(set(names))
            if name in values and not is_secret_name(name)}


def build_record(
    request: WebhookRequest, inbound: Inbound, reasons: Sequence[str], names: RequestNames | None = None
) -> dict[str, Any]:
    """The record of an authentic payload that did not (fully) map: the clear-text payload, the
    request values a replay needs (``names``, secrets excepted) and the reasons."""
    names = names or RequestNames()
    payload = inbound.payload
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "source": request.source,
        "account": request.account,
        "payload": text,
        "payload_encoding": encoding,
        "payload_type": inbound.payload_type,
        "headers": _kept(request.headers, [*KEPT_HEADERS, *(n.lower() for n in names.headers)]),
        "reasons": list(reasons),
        "received_at": request.received_at,
        "request_id": request.request_id,
    }
    query = _kept(request.query, names.query)
    if query:
        record["query"] = query
    if inbound.context:
        try:
            record["context"] = json.loads(json.dumps(inbound.context, default=str))
        except (TypeError, ValueError):
            pass
    return record


def _encoded(record: Mapping[str, Any]) -> bytes:
    # The same encoding queue.send_messages uses, so the size measured is the size sent.
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def object_key(record: Mapping[str, Any]) -> str:
    """Where a record is stored: by source, account and UTC day, unique per call."""
    day = time.strftime("%Y/%m/%d", time.gmtime(float(record.get("received_at") or time.time())))
    return f"{OBJECT_PREFIX}{record.get('source')}/{record.get('account')}/{day}/{uuid.uuid4().hex}.json"


def store_by_reference(bucket: str, record: Mapping[str, Any], body: bytes, *, s3: Any | None = None) -> dict[str, Any]:
    """Put the whole record in S3; returns the pointer record that goes on the queue."""
    if s3 is None:
        from dmhub_adapter import aws

        s3 = aws.client("s3")
    key = object_key(record)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except Exception as exc:
        logger.exception("unmapped bucket unavailable")
        raise DependencyUnavailable("unmapped_bucket") from exc
    reasons = list(record.get("reasons") or [])
    pointer = {name: record[name] for name in ("version", "source", "account", "received_at", "request_id")
               if name in record}
    pointer["reasons"] = reasons[:POINTER_REASONS] + (
        [f"… and {len(reasons) - POINTER_REASONS} more in the stored record"] if len(reasons) > POINTER_REASONS else [])
    pointer["payload_ref"] = {"bucket": bucket, "key": key, "bytes": len(body)}
    return pointer


def send_record(
    queue_url: str,
    record: Mapping[str, Any],
    *,
    client: Any | None = None,
    bucket: str | None = None,
    s3: Any | None = None,
) -> str:
    """Put one record on the UnmappedQueue, by reference when it is over :data:`INLINE_MAX`;
    raises :class:`DependencyUnavailable` on failure and :class:`PayloadTooLarge` when a record
    is too large and no bucket is configured."""
    body = _encoded(record)
    if len(body) > INLINE_MAX:
        if not bucket:
            logger.error("unmapped record of %d bytes exceeds the queue and %s is not set", len(body), BUCKET_ENV)
            raise PayloadTooLarge(
                f"the authentic payload cannot be kept: its unmapped record is {len(body)} bytes, over the "
                f"queue's {INLINE_MAX}, and no {BUCKET_ENV} is configured"
            )
        record = store_by_reference(bucket, record, body, s3=s3)
    reasons = record.get("reasons") or []
    attributes = {
        "source": str(record.get("source") or ""),
        "account": str(record.get("account") or ""),
        "reason": (str(reasons[0]) if reasons else "")[:_REASON_ATTRIBUTE_MAX],
    }
    try:
        (message_id,) = send_messages(queue_url, [OutgoingMessage(body=dict(record), attributes=attributes)],
                                      client=client)
    except EnqueueError as exc:
        logger.error("unmapped queue refused a record: %s", exc)
        raise DependencyUnavailable("unmapped_queue") from exc
    except Exception as exc:
        logger.exception("unmapped queue unavailable")
        raise DependencyUnavailable("unmapped_queue") from exc
    return message_id


def resolve_record(record: Mapping[str, Any], *, s3: Any | None = None) -> Mapping[str, Any]:
    """The full record: a pointer record's stored object, or the record itself. Raises
    :class:`RecordError` when the object is gone or is not a record (errors of S3 itself pass
    through: they are worth another try)."""
    ref = record.get("payload_ref")
    if ref is None:
        return record
    if not isinstance(ref, Mapping) or not isinstance(ref.get("bucket"), str) or not isinstance(ref.get("key"), str):
        raise RecordError("payload_ref names no bucket and key")
    if s3 is None:
        from dmhub_adapter import aws

        s3 = aws.client("s3")
    try:
        body = s3.get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read()
    except s3.exceptions.NoSuchKey as exc:
        raise RecordError(f"the stored record s3://{ref['bucket']}/{ref['key']} is gone (lifecycle?)") from exc
    try:
        stored = json.loads(body)
    except ValueError as exc:
        raise RecordError("the stored record is not JSON") from exc
    if not isinstance(stored, dict) or "payload_ref" in stored:
        raise RecordError("the stored object is not an unmapped record")
    return stored


def record_payload(record: Mapping[str, Any]) -> bytes:
    """The original body bytes of an unmapped record, decoded from its stored encoding.

    Raises `RecordError` when the record has no payload or an encoding this version cannot read.
    """
    payload = record.get("payload")
    if not isinstance(payload, str):
        raise RecordError("record has no payload")
    encoding = record.get("payload_encoding", "utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except ValueError as exc:
            raise RecordError(f"payload is not valid base64: {exc}") from exc
    if encoding != "utf-8":
        raise RecordError(f"unknown payload_encoding {encoding!r}")
    return payload.encode("utf-8")


def request_from_record(record: Mapping[str, Any]) -> WebhookRequest:
    """The request a replay hands to ``source.parse_unverified``: the clear-text payload with
    its content type, and the headers and query values the record kept (no signatures: they
    belong to the original delivery, and the payload is already decrypted)."""
    if record.get("version") != RECORD_VERSION:
        raise RecordError(f"unsupported record version {record.get('version')!r}")
    source, account = record.get("source"), record.get("account")
    if not isinstance(source, str) or not source or not isinstance(account, str) or not account:
        raise RecordError("record names no source or account")
    headers = {str(k).lower(): str(v) for k, v in (record.get("headers") or {}).items()}
    kept_query = record.get("query") or {}
    if not isinstance(kept_query, Mapping):
        raise RecordError("record's query is not an object")
    query = {str(k): str(v) for k, v in kept_query.items()}
    payload_type = record.get("payload_type")
    # The adapter's payload_type describes the clear text; the original content type may
    # describe an encrypted envelope around it.
    if isinstance(payload_type, str) and payload_type and payload_type != "application/octet-stream":
        headers["content-type"] = payload_type
    received_at = record.get("received_at")
    return WebhookRequest(
        method="POST",
        source=source,
        account=account,
        body=record_payload(record),
        query=query,
        raw_query=urlencode(query),
        headers=headers,
        path=f"/webhooks/{source}/{account}",
        received_at=float(received_at) if isinstance(received_at, (int, float)) else time.time(),
        request_id=str(record["request_id"]) if record.get("request_id") else None,
    )


class UnmappedQueue:
    """The UnmappedQueue as the pipeline sees it: one method that keeps a record or raises
    :class:`DependencyUnavailable` (the request then answers 503 and the platform retries)."""

    def __init__(
        self,
        queue_url: str,
        client: SQSClient,
        *,
        bucket: str | None = None,
        s3: Callable[[], S3Client] | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.client = client
        #: where records over the queue's size go (``UNMAPPED_BUCKET``); None refuses them (413)
        self.bucket = bucket
        self._s3 = s3

    def send(self, record: Mapping[str, Any]) -> str:
        """Keep ``record`` (by reference in the bucket when it is too large); returns the SQS message id."""
        return send_record(self.queue_url, record, client=self.client, bucket=self.bucket or "",
                           s3=self._s3() if self._s3 is not None and self.bucket else None)
