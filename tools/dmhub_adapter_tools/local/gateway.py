"""A local stand-in for the API Gateway HTTP API: one route, ``/webhooks/{source}/{account}``,
integrated with the ingest handler through payload format 2.0 events.

What it reproduces: the v2 event (raw path and query string, lower-case headers with
duplicates joined by commas, ``cookies``, path parameters, base64 bodies for non-text content
types, request context), the 10 MB payload cap, and how API Gateway reads the Lambda's answer
(a dict with ``statusCode``, or any other JSON value as a 200 ``application/json`` body;
``cookies`` become ``set-cookie``; a crashing handler becomes a 500 ``Internal Server Error``).
What it does not (authorizers, throttling, TLS, stages, payload 1.0, the 30 s integration
timeout, concurrent instances) is listed in docs/local-stack.md.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from dmhub_adapter.ingest.outcome import RequestOutcome
from dmhub_adapter.observability import observing
from dmhub_adapter_tools.local.apigw_event import make_event
from dmhub_adapter_tools.local.context import new_context
from dmhub_adapter_tools.local.request_log import RequestLog, RequestRecord

log = logging.getLogger("dmhub_adapter_tools.local.gateway")

ROUTE = re.compile(r"^/webhooks/(?P<source>[^/]+)/(?P<account>[^/]+)$")
#: the gateway's own endpoint: recent request outcomes (see :mod:`.request_log`)
REQUESTS_PATH = "/_local/requests"
#: the methods template.yaml routes to the ingest (API Gateway answers 404 for the others)
ROUTE_METHODS = frozenset({"GET", "POST"})
#: API Gateway's payload quota for HTTP APIs.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
#: Headers a client cannot set on a Lambda event's behalf (API Gateway strips or rewrites them).
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
_TEXT_SUBTYPES = ("json", "xml", "javascript")

Invoke = Callable[[dict[str, Any], Any], Any]


def is_text_content_type(content_type: str | None) -> bool:
    """Whether API Gateway passes the body as text (otherwise it base64-encodes it)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("text/"):
        return True
    _, _, subtype = media.partition("/")
    return any(subtype == s or subtype.endswith(f"+{s}") for s in _TEXT_SUBTYPES)


def new_request_id() -> str:
    """The shape of an HTTP API request id (e.g. ``JKJaXmPLvHcESHA=``)."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii")[:14] + "="


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source: str,
    account: str,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway would send for this request."""
    combined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key in _HOP_BY_HOP:
            continue
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        combined[key] = f"{combined[key]},{value}" if key in combined else value
    request_id = request_id or new_request_id()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    combined.setdefault("x-forwarded-for", source_ip)
    combined.setdefault("x-forwarded-proto", "http")
    combined["x-amzn-trace-id"] = f"Root=1-{now_ms // 1000:08x}-{secrets.token_hex(12)}"
    if body:
        combined["content-length"] = str(len(body))
    event = make_event(
        method=method,
        source=source,
        account=account,
        body=body,
        raw_query=raw_query,
        headers=combined,
        request_id=request_id,
        now_ms=now_ms,
    )
    event["rawPath"] = raw_path
    event["requestContext"]["http"]["path"] = raw_path
    event["requestContext"]["http"]["sourceIp"] = source_ip
    event["requestContext"]["http"]["userAgent"] = combined.get("user-agent", "")
    if is_text_content_type(combined.get("content-type")):
        try:
            event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    else:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode("ascii"), True
    if not body:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    if cookies:
        event["cookies"] = cookies
    return event


@dataclass
class GatewayResponse:
    """The HTTP answer, and what the ingest reported about the request (if it saw it)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    source: str | None = None
    account: str | None = None
    outcome: RequestOutcome | None = None
    #: why the gateway itself answered (no route, too large, the handler raised)
    reason: str | None = None


def _json_error(status: int, message: str, reason: str | None = None) -> GatewayResponse:
    body = json.dumps({"message": message}).encode()
    return GatewayResponse(status, [("content-type", "application/json")], body, reason=reason or message)


def translate_result(result: Any) -> GatewayResponse:
    """Read a handler's return value the way API Gateway does for payload format 2.0."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # "If your Lambda function returns valid JSON and doesn't return a statusCode, API
        # Gateway assumes a 200 with the value as an application/json body."
        try:
            text = json.dumps(result)
        except (TypeError, ValueError):
            return _json_error(500, "Internal Server Error")
        return GatewayResponse(200, [("content-type", "application/json")], text.encode())
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return _json_error(500, "Internal Server Error")
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(raw_body))
        except ValueError:
            return _json_error(500, "Internal Server Error")
    else:
        body = raw_body.encode("utf-8") if isinstance(raw_body, str) else json.dumps(raw_body).encode()
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    return GatewayResponse(status, headers, body)


class LocalGateway:
    """A ThreadingHTTPServer on 127.0.0.1 that invokes ``invoke(event, context)`` per request."""

    def __init__(
        self,
        invoke: Invoke,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        function_name: str = "IngestFunction",
        timeout_seconds: float = 10.0,
        memory_limit_in_mb: int = 1024,
        region: str = "eu-west-1",
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        on_request: Callable[[RequestRecord], None] | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.invoke = invoke
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.memory_limit_in_mb = memory_limit_in_mb
        self.region = region
        self.max_payload_bytes = max_payload_bytes
        self.on_request = on_request or (lambda record: log.info("%s", record.text()))
        #: the recent requests' outcomes, served at ``/_local/requests``
        self.requests = request_log or RequestLog()
        self.server = ThreadingHTTPServer((host, port), _handler_class(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None
        # One warm Lambda instance handles one event at a time; handlers (and Powertools'
        # Logger/Metrics state) are written for that, so requests queue here instead.
        self._instance = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalGateway:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server.server_close()

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, client_ip: str
    ) -> GatewayResponse:
        raw_path, _, raw_query = target.partition("?")
        match = ROUTE.match(raw_path)
        if match is None or method not in ROUTE_METHODS:
            return _json_error(404, "Not Found", "no such route (API Gateway's 404)")
        source, account = unquote(match["source"]), unquote(match["account"])
        event = build_event(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            source=source,
            account=account,
            source_ip=client_ip,
        )
        context = new_context(
            self.function_name,
            timeout_seconds=self.timeout_seconds,
            memory_limit_in_mb=self.memory_limit_in_mb,
            region=self.region,
        )
        outcomes: list[RequestOutcome] = []

        def observe(outcome: object) -> None:
            if isinstance(outcome, RequestOutcome):
                outcomes.append(outcome)

        try:
            with self._instance, observing(observe):
                result = self.invoke(event, context)
        except Exception as exc:
            log.exception("%s raised; answering 500 as API Gateway does", self.function_name)
            response = _json_error(500, "Internal Server Error", f"{self.function_name} raised {type(exc).__name__}")
        else:
            response = translate_result(result)
        response.headers.append(("apigw-requestid", event["requestContext"]["requestId"]))
        response.source, response.account = source, account
        response.outcome = outcomes[-1] if outcomes else None
        return response

    def record(self, method: str, target: str, response: GatewayResponse, elapsed_ms: float) -> RequestRecord:
        """Keep and report one answered request's outcome."""
        record = self.requests.add(
            method=method,
            path=target.partition("?")[0],
            source=response.source,
            account=response.account,
            status=response.status,
            ms=elapsed_ms,
            outcome=response.outcome,
            reason=response.reason,
        )
        try:
            self.on_request(record)
        except Exception:
            log.exception("reporting a request failed")
        return record

    def local(self, method: str, target: str) -> GatewayResponse:
        """The gateway's own ``/_local/`` endpoints (not API Gateway's)."""
        raw_path, _, raw_query = target.partition("?")
        if raw_path != REQUESTS_PATH:
            return _json_error(404, "Not Found")
        if method != "GET":
            return _json_error(405, "Method Not Allowed")
        query = parse_qs(raw_query)
        try:
            since = int((query.get("since") or ["0"])[0])
            limit = int(query["limit"][0]) if "limit" in query else None
        except ValueError:
            return _json_error(400, "since and limit must be integers")
        if since < 0 or (limit is not None and limit < 1):
            return _json_error(400, "since must be >= 0 and limit >= 1")
        body = json.dumps(self.requests.since(since, limit)).encode()
        return GatewayResponse(200, [("content-type", "application/json"), ("cache-control", "no-store")], body)


def _handler_class(gateway: LocalGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dmhub-adapter-local-gateway"

        def _serve(self) -> None:
            started = time.perf_counter()
            body = self._read_body()
            if isinstance(body, GatewayResponse):
                response = body
            elif self.path.startswith("/_local/"):
                self._send(gateway.local(self.command, self.path))
                return
            else:
                client_ip = str(self.client_address[0])
                response = gateway.handle(self.command, self.path, list(self.headers.items()), body, client_ip)
            self._send(response)
            gateway.record(self.command, self.path, response, (time.perf_counter() - started) * 1000)

        def _read_body(self) -> bytes | GatewayResponse:
            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                return self._read_chunked()
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                self.close_connection = True
                return _json_error(400, "Bad Request", "unreadable Content-Length")
            if length > gateway.max_payload_bytes:
                self.close_connection = True  # the unread body would poison the connection
                return _json_error(413, "Request Entity Too Large", f"body over {gateway.max_payload_bytes} bytes")
            return self.rfile.read(length) if length > 0 else b""

        def _read_chunked(self) -> bytes | GatewayResponse:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    return _json_error(400, "Bad Request")
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > gateway.max_payload_bytes:
                    self.close_connection = True
                    return _json_error(413, "Request Entity Too Large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)

        def _send(self, response: GatewayResponse) -> None:
            self.send_response(response.status)
            names = {name.lower() for name, _ in response.headers}
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if "content-type" not in names and response.body:
                self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request comes from on_request instead

    return Handler
