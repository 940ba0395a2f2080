"""A DM Hub emulator: the v1 token, CustomerEvent, collector and customer-identity APIs and
the v2 token and customer-event APIs over HTTP on 127.0.0.1, answering the way DM Hub does
(errors in HTTP 200 bodies included), with knobs for latency, 5xx/429 faults, token
revocation, the rule set (current or 2018), the attribute budget, string error codes and
non-token body errors (e.g. 40201) for chosen event types.

In-process use (tests, benchmarks)::

    with EmulatorServer(port=0, latency=0.05) as dmhub:
        client = SomeClient(dmhub.base_url, app_id=dmhub.app_id, secret=dmhub.secret)
        ...
        assert dmhub.state.counters()["events_created"] == 1

Other processes steer a running emulator through ``/_emulator/*`` (see docs/emulator.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from dmhub_adapter_tools.emulator.rules import (
    BUILT_IN_FIELDS,
    FieldError,
    PlainBadRequest,
    ValidationFailed,
    normalize_partition,
    parse_date,
    parse_event_query,
    validate_event,
    validate_identities,
)
from dmhub_adapter_tools.emulator.state import (
    DEFAULT_APP_ID,
    DEFAULT_SECRET,
    ENDPOINTS,
    EmulatorConfig,
    EmulatorState,
    Fault,
)

__all__ = ["ENDPOINTS", "DmhubEmulator", "EmulatorConfig", "EmulatorServer", "EmulatorState", "Reply"]

MAX_BODY = 1024 * 1024
COLLECTOR_BATCH_MAX = 100
CONTROL_PREFIX = "/_emulator/"
_EVENT_ID = re.compile(r"^/v1/customerevents/([^/]+)$")
_CUSTOMER_ID = re.compile(r"^/v1/customers/([^/]+)$")


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: ``body`` is JSON-able, or a ``str`` sent as text/plain."""

    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[dict[str, str], bytes, str | None], Reply]


class DmhubEmulator:
    """The request logic, free of sockets: ``handle(method, target, body) -> Reply``."""

    def __init__(self, config: EmulatorConfig | None = None, clock: Callable[[], float] | None = None) -> None:
        self.state = EmulatorState(config, clock)
        self._local = threading.local()

    @property
    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = getattr(self._local, "headers", {})
        return headers

    # ------------------------------------------------------------------ dispatch
    def handle(
        self, method: str, target: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Reply:
        # per thread: the HTTP server answers requests concurrently
        self._local.headers = {k.lower(): v for k, v in (headers or {}).items()}
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.startswith(CONTROL_PREFIX.rstrip("/")):
            return self._control(method, path, body)

        endpoint, handler, arg, allowed = self._route(method, path)
        self.state.enter(endpoint)
        reply = Reply(500, "Internal Server Error")
        try:
            latency, fault = self.state.plan(endpoint)
            if latency:
                time.sleep(latency)
            if fault is not None and not fault.after:
                reply = _fault_reply(fault)
                return reply
            try:
                reply = self._serve(endpoint, handler, arg, allowed, query, body)
            except Exception as exc:  # an emulator bug must still answer, like a real server
                reply = Reply(500, {"status": 500, "error": "Internal Server Error", "message": repr(exc)})
            if fault is not None:
                reply = _fault_reply(fault)
            return reply
        finally:
            self.state.leave(reply.status)

    def _route(self, method: str, path: str) -> tuple[str, Handler | None, str | None, str]:
        """(endpoint name, handler or None when the method is wrong, path argument, allowed methods)."""
        routes: dict[str, dict[str, tuple[str, Handler]]] = {
            "/security/accesstoken": {"GET": ("token", self._token)},
            "/v1/customerevents": {
                "POST": ("events.create", self._create_event),
                "GET": ("events.query", self._query_events),
            },
            "/v1/customeridentities": {"GET": ("identities.query", self._query_identities)},
            "/v1/customerandidentities": {"POST": ("customers.upsert", self._upsert_customer)},
            "/v1/collector/pushevent": {"POST": ("collector.push", self._push_event)},
            "/v1/collector/batchPushEvents": {"POST": ("collector.batch", self._push_events)},
            "/v2/oauth2/token": {"POST": ("v2.token", self._token_v2)},
            "/v2/customerEvents": {"POST": ("v2.events.create", self._create_event_v2)},
        }
        arg: str | None = None
        table = routes.get(path)
        if table is None:
            if match := _EVENT_ID.match(path):
                table, arg = {"GET": ("events.get", self._get_event)}, match.group(1)
            elif match := _CUSTOMER_ID.match(path):
                table, arg = {"GET": ("customers.get", self._get_customer)}, match.group(1)
            else:
                return "unknown", None, None, ""
        allowed = ", ".join(sorted(table))
        if method not in table:
            return next(iter(table.values()))[0], None, arg, allowed
        name, handler = table[method]
        return name, handler, arg, allowed

    def _serve(
        self,
        endpoint: str,
        handler: Handler | None,
        arg: str | None,
        allowed: str,
        query: dict[str, str],
        body: bytes,
    ) -> Reply:
        if endpoint.startswith("v2."):
            if endpoint != "v2.token" and self.state.check_token(self._bearer()) is not None:
                return Reply(401, _v2_error("invalid_token", "access token is invalid or expired"))
        elif endpoint != "token":
            # DM Hub's security layer answers before routing, in HTTP 200
            token_error = self.state.check_token(query.get("access_token") or self._bearer())
            if token_error is not None:
                return Reply(200, token_error)
        if endpoint == "unknown":
            return Reply(404, {"status": 404, "error": "Not Found", "message": "No message available"})
        if handler is None:
            return Reply(
                405,
                {"status": 405, "error": "Method Not Allowed", "message": "Request method not supported"},
                (("Allow", allowed),),
            )
        try:
            return handler(query, body, arg)
        except ValidationFailed as exc:
            self.state.count("validation_errors")
            if endpoint.startswith("v2."):
                return Reply(400, _v2_error("400001", "field validation exception", exc.body()["error"]["fieldErrors"]))
            return Reply(200, exc.body())
        except PlainBadRequest as exc:
            self.state.count("bad_requests")
            return Reply(400, str(exc))

    # ------------------------------------------------------------------ DM Hub API
    def _token(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        return Reply(200, self.state.issue_token(query))

    def _bearer(self) -> str | None:
        value = self._headers.get("authorization", "")
        return value[7:].strip() or None if value.lower().startswith("bearer ") else None

    def _validate(self, data: Mapping[str, Any], *, customer_required: bool = True) -> dict[str, Any]:
        config = self.state.config
        return validate_event(
            data, config.event_types, rules=config.rules, custom_attributes=config.custom_attributes,
            customer_required=customer_required,
        )

    def _create_event(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        data = _json_object(body)
        refusal = self.state.refusal(data.get("event") if isinstance(data.get("event"), str) else None)
        if refusal is not None:
            return Reply(200, refusal)
        clean = self._validate(data)
        record, _created = self.state.save_event(clean)
        # DM Hub answers 201 for a dedup update too: the caller cannot tell, nor needs to
        return Reply(201, record)

    def _keyed(self, data: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Validate an identity-keyed event (collector, v2) and attach its customer."""
        fields = {k: v for k, v in data.items() if k not in ("identityType", "identityValue")}
        kind, value = data.get("identityType"), data.get("identityValue")
        errors: list[FieldError] = []
        if data.get("customerId") is None and not (isinstance(kind, str) and kind and isinstance(value, str) and value):
            errors.append(FieldError(f"{where}identityType", "give identityType and identityValue, or customerId"))
        try:
            clean = self._validate(fields, customer_required=False)
        except ValidationFailed as exc:
            errors.extend(FieldError(where + e.field_name, e.message) for e in exc.errors)
            clean = {}
        if errors:
            raise ValidationFailed(errors)
        if clean.get("customerId") is None:
            assert isinstance(kind, str) and isinstance(value, str)
            clean["customerId"] = self.state.customer_for(kind, value)
        return clean

    def _push_event(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        data = _json_object(body)
        refusal = self.state.refusal(data.get("event") if isinstance(data.get("event"), str) else None)
        if refusal is not None:
            return Reply(200, refusal)
        self.state.save_event(self._keyed(data))
        self.state.count("events_pushed")
        return Reply(200, {"success": True})

    def _push_events(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        data = _json_object(body)
        events = data.get("events")
        if not isinstance(events, list) or not events:
            raise PlainBadRequest("events must be a non-empty array")
        if len(events) > COLLECTOR_BATCH_MAX:
            raise ValidationFailed([FieldError("events", f"at most {COLLECTOR_BATCH_MAX} events per call")])
        raw_common = data.get("commonProps")
        common: dict[str, Any] = raw_common if isinstance(raw_common, dict) else {}
        merged = [{**item, **common} if isinstance(item, dict) else item for item in events]
        for item in merged:
            refusal = self.state.refusal(item.get("event") if isinstance(item, dict) else None)
            if refusal is not None:
                return Reply(200, refusal)
        errors: list[FieldError] = []
        checked: list[dict[str, Any]] = []
        for index, item in enumerate(merged):
            if not isinstance(item, dict):
                errors.append(FieldError(f"events[{index}]", "must be an object"))
                continue
            try:
                checked.append(self._keyed(item, f"events[{index}]."))
            except ValidationFailed as exc:
                errors.extend(exc.errors)
        if errors:
            # all or nothing: a batch with one bad event stores none of them
            raise ValidationFailed(errors)
        for clean in checked:
            self.state.save_event(clean)
        self.state.count("events_pushed", len(checked))
        return Reply(200, {"success": True})

    def _token_v2(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return Reply(400, _v2_error("unsupported_grant_type", "grant_type must be client_credentials"))
        header = self._headers.get("authorization", "")
        try:
            app_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            app_id, secret = "", ""
        grant = self.state.issue_token_v2(app_id, secret) if header.lower().startswith("basic ") else None
        if grant is None:
            return Reply(401, _v2_error("invalid_client", "bad client credentials"))
        return Reply(200, grant)

    def _create_event_v2(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        data = _json_object(body)
        refusal = self.state.refusal(data.get("event") if isinstance(data.get("event"), str) else None)
        if refusal is not None:
            return Reply(403, _v2_error(str(refusal["error_code"]), refusal["error_description"]))
        fields: dict[str, Any] = {}
        errors: list[FieldError] = []
        for name, value in data.items():
            if name in BUILT_IN_FIELDS or name in ("identityType", "identityValue"):
                fields[name] = value
            elif name.startswith("c_") and len(name) > 2:
                fields[name[2:]] = value  # v2 custom attributes carry their c_ prefix
            else:
                errors.append(FieldError(name, "unknown field: custom attributes start with c_"))
        if errors:
            raise ValidationFailed(errors)
        record, _ = self.state.save_event(self._keyed(fields))
        return Reply(201, {"success": True, "data": record})

    def _get_event(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        event_id = _path_long(arg)
        partition = normalize_partition(query.get("partition"), self.state.config.rules, self.state.now())
        record = self.state.get_event(event_id, partition)
        if record is None:
            # DM Hub answers an unknown id with a server error, not 404
            return Reply(
                500, {"status": 500, "error": "Internal Server Error", "message": f"CustomerEvent {event_id} not found"}
            )
        return Reply(200, record)

    def _query_events(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        return Reply(200, self.state.query_events(parse_event_query(query, self.state.config.rules, self.state.now())))

    def _query_identities(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        kind = query.get("identityType") or None
        value = query.get("identityValue") or None
        raw_ids = query.get("customerIds") or None
        ids: frozenset[int] | None = None
        if raw_ids is not None:
            try:
                ids = frozenset(int(part) for part in raw_ids.split(",") if part.strip())
            except ValueError as exc:
                raise ValidationFailed([FieldError("customerIds", "must be a comma separated list of Long")]) from exc
        if ids is None and (kind is None or value is None):
            raise ValidationFailed(
                [
                    FieldError(
                        "identityValue" if kind else "identityType",
                        "give identityType and identityValue, or customerIds",
                    )
                ]
            )
        return Reply(200, self.state.find_identities(kind, value, ids))

    def _upsert_customer(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        data = _json_object(body)
        customer = data.get("customer")
        if not isinstance(customer, dict):
            raise PlainBadRequest("No customer field found")
        identities = validate_identities(data.get("customerIdentities"))
        record, created = self.state.upsert_customer(customer, identities)
        return Reply(201 if created else 200, record)

    def _get_customer(self, query: dict[str, str], body: bytes, arg: str | None) -> Reply:
        customer_id = _path_long(arg)
        record = self.state.get_customer(customer_id)
        if record is None:
            return Reply(
                500, {"status": 500, "error": "Internal Server Error", "message": f"Customer {customer_id} not found"}
            )
        return Reply(200, record)

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, path: str, body: bytes) -> Reply:
        action = path[len(CONTROL_PREFIX) :]
        try:
            data = _json_object(body) if body.strip() else {}
            if method == "GET" and action == "state":
                return Reply(200, self.state.snapshot())
            if method == "GET" and action == "config":
                return Reply(200, self.state.config.model_dump(mode="json"))
            if method != "POST":
                return Reply(405, {"error": f"{method} {path} is not a control action"})
            if action == "config":
                return Reply(200, self.state.configure(**data).model_dump(mode="json"))
            if action == "reset":
                self.state.reset(config=bool(data.get("config", True)))
                return Reply(200, {"reset": True})
            if action == "revoke-token":
                apps = self.state.revoke_token(data.get("appId"), expired=bool(data.get("expired", False)))
                return Reply(200, {"revoked": apps})
            if action == "fail-next":
                self.state.fail_next(
                    int(data.get("count", 1)),
                    int(data.get("status", 503)),
                    endpoint=data.get("endpoint"),
                    after=bool(data.get("after", False)),
                    body=data.get("body"),
                    retry_after=data.get("retryAfter"),
                )
                return Reply(200, {"pending": self.state.snapshot()["pending_failures"]})
            if action == "clock":
                return Reply(200, self._clock_action(data))
        except (ValidationError, ValueError, TypeError, PlainBadRequest) as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(404, {"error": f"unknown control action {action!r}"})

    def _clock_action(self, data: Mapping[str, Any]) -> dict[str, Any]:
        if data.get("real"):
            self.state.set_clock(None)
        elif "set" in data:
            moment = parse_date(str(data["set"]))
            if moment is None:
                raise ValueError("set must be a UTC time like 2024-01-01T00:00:00Z")
            self.state.set_clock(moment.timestamp())
        elif "advance" in data:
            self.state.advance_clock(float(data["advance"]))
        else:
            raise ValueError("give one of: advance (seconds), set (UTC time), real (true)")
        return {"now": self.state.snapshot()["now"]}


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise PlainBadRequest("Required request body is missing")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlainBadRequest(f"JSON parse error: {exc}") from exc
    if not isinstance(data, dict):
        raise PlainBadRequest("JSON parse error: request body must be a JSON object")
    return data


def _path_long(arg: str | None) -> int:
    if arg is None or not re.fullmatch(r"-?[0-9]{1,19}", arg):
        raise PlainBadRequest(f"Failed to convert value of type 'java.lang.String' to required type 'long': {arg!r}")
    return int(arg)


def _v2_error(code: str, message: str, field_errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "fieldErrors": field_errors or []}}


def _fault_reply(fault: Fault) -> Reply:
    headers: tuple[tuple[str, str], ...] = ()
    if fault.retry_after is not None:
        headers = (("Retry-After", str(fault.retry_after)),)
    body = fault.body
    if body is None:
        try:
            body = f"{fault.status} {HTTPStatus(fault.status).phrase}"
        except ValueError:
            body = f"{fault.status} Error"
    return Reply(fault.status, body, headers)


# ---------------------------------------------------------------------- HTTP server
class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # benchmarks open many connections at once; the stdlib default backlog of 5 refuses them
    request_queue_size = 256
    app: DmhubEmulator
    log: Callable[[str], None] | None = None


class _RequestHandler(BaseHTTPRequestHandler):
    # keep-alive, so clients reuse connections as they would against DM Hub
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    # idle keep-alive connections are closed after this many seconds
    timeout = 30
    # headers and body go out in separate writes; with Nagle on, each answer on a kept-alive
    # connection would wait for the client's delayed ACK (~40 ms)
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self._read_chunked()
            if body is None:
                self.close_connection = True
                self._send(Reply(413, "Request body too large"))
                return
            self._send(self.server.app.handle(self.command, self.path, body, dict(self.headers.items())))
            return
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(Reply(413 if length > MAX_BODY else 400, "Request body too large or malformed"))
            return
        body = self.rfile.read(length) if length else b""
        reply = self.server.app.handle(self.command, self.path, body, dict(self.headers.items()))
        self._send(reply)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers, up to the blank line
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            payload = reply.body.encode()
            content_type = "text/plain;charset=UTF-8"
        else:
            payload = json.dumps(reply.body, ensure_ascii=False).encode()
            content_type = "application/json;charset=UTF-8"
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.log is not None:
            # tokens and secrets travel in the query string: log the path only
            path = self.path.split("?", 1)[0]
            self.server.log(f"{self.command} {path} {code}")


class EmulatorServer:
    """The emulator on a real socket, served from a background thread.

    ``EmulatorServer(host="127.0.0.1", port=0, *, clock=None, log=None, app_id=..., secret=...,
    **knobs)`` where knobs are the fields of :class:`EmulatorConfig` (latency, error_rate,
    throttle_rate, error_status, retry_after, fault_endpoints, token_ttl, event_types, seed,
    apps). ``app_id``/``secret`` (default demo-app/demo-secret) are added to ``apps``.
    Use it as a context manager, or call ``start()``/``stop()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        app_id: str = DEFAULT_APP_ID,
        secret: str = DEFAULT_SECRET,
        clock: Callable[[], float] | None = None,
        log: Callable[[str], None] | None = None,
        **knobs: Any,
    ) -> None:
        apps = dict(knobs.pop("apps", None) or {})
        apps.setdefault(app_id, secret)
        self.app_id = app_id
        self.secret = apps[app_id]
        self.app = DmhubEmulator(EmulatorConfig(apps=apps, **knobs), clock)
        self._host = host
        self._port = port
        self._log = log
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> EmulatorServer:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self._host, self._port), _RequestHandler)
        httpd.app = self.app
        httpd.log = self._log
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="dmhub-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash): use it as DMHUB_BASE_URL."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """Alias of :attr:`base_url`."""
        return self.base_url

    # ------------------------------------------------------------------ knobs and state
    @property
    def state(self) -> EmulatorState:
        return self.app.state

    @property
    def config(self) -> EmulatorConfig:
        return self.app.state.config

    def configure(self, **knobs: Any) -> EmulatorConfig:
        """Change knobs at runtime (validated; unknown names raise)."""
        return self.app.state.configure(**knobs)

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        endpoint: str | None = None,
        after: bool = False,
        body: Any = None,
        retry_after: int | None = None,
    ) -> None:
        self.app.state.fail_next(count, status, endpoint=endpoint, after=after, body=body, retry_after=retry_after)

    def revoke_token(self, app_id: str | None = None, *, expired: bool = False) -> list[str]:
        return self.app.state.revoke_token(app_id, expired=expired)

    def reset(self, *, config: bool = True) -> None:
        self.app.state.reset(config=config)

    def advance_clock(self, seconds: float) -> None:
        self.app.state.advance_clock(seconds)

    def set_clock(self, epoch: float | None) -> None:
        self.app.state.set_clock(epoch)
