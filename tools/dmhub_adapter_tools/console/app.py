"""The console's web layer: a Starlette app of server-rendered Jinja2 pages, refreshed by the
vendored htmx. Access needs the random token printed at start (then a cookie); every POST
needs the CSRF token; Jinja2 autoescaping keeps payloads inert; secrets are never rendered."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from dmhub_adapter_tools.console.backend import (
    OUTCOMES,
    PEEK_LIMIT,
    Backend,
    ConsoleError,
    NotFound,
    preview_mapping,
)

HERE = Path(__file__).parent
COOKIE = "dmhub_console"
#: largest form a POST may carry (a pasted payload plus a mapping YAML)
MAX_FORM_BYTES = 2 * 1024 * 1024
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class ConsoleConfig:
    """The secrets of one console run: the access token and the CSRF token derived from it."""

    access_token: str
    port: int

    @property
    def csrf_token(self) -> str:
        """The CSRF token: a keyed digest of the access token (one per run)."""
        return hmac.new(self.access_token.encode(), b"csrf", "sha256").hexdigest()

    @classmethod
    def new(cls, port: int) -> ConsoleConfig:
        """A console run with a fresh random access token."""
        return cls(access_token=secrets.token_urlsafe(32), port=port)


class AccessMiddleware(BaseHTTPMiddleware):
    """Token in the URL (first visit) or the cookie; Host must be the loopback address (DNS
    rebinding); POSTs carry the CSRF token; every answer forbids framing and outside scripts."""

    def __init__(self, app: Any, config: ConsoleConfig) -> None:
        super().__init__(app)
        self.config = config

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Apply the access rules, then serve the request."""
        host = (request.headers.get("host") or "").rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost"):
            return PlainTextResponse("the console answers on 127.0.0.1 only", status_code=403)
        given = request.query_params.get("token")
        if given is not None:
            if not hmac.compare_digest(given.encode(), self.config.access_token.encode()):
                return PlainTextResponse("wrong access token", status_code=403)
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response: Response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(COOKIE, self.config.access_token, httponly=True, samesite="strict",
                                path="/")
            return _harden(response)
        cookie = request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(cookie.encode(), self.config.access_token.encode()):
            return _harden(PlainTextResponse(
                "open the console with the URL (and its token) printed when it started", status_code=403))
        if request.method == "POST":
            length = request.headers.get("content-length", "")
            if not length.isdigit() or int(length) > MAX_FORM_BYTES:
                return _harden(PlainTextResponse(
                    f"a form needs a Content-Length of at most {MAX_FORM_BYTES} bytes", status_code=413))
            sent = request.headers.get("x-csrf-token")
            if sent is None:
                await request.body()  # read (and kept for the endpoint) before the form is parsed
                form = await request.form()
                sent = str(form.get("csrf") or "")
            if not hmac.compare_digest(sent.encode(), self.config.csrf_token.encode()):
                return _harden(PlainTextResponse("missing or wrong CSRF token", status_code=403))
        return _harden(await call_next(request))


def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(backend: Backend, config: ConsoleConfig) -> Starlette:
    """The console's ASGI app for one backend and one access token."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True
    templates.env.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=2, default=str)
    target = backend.target

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        """A template with what every page needs (CSRF token, target, actions)."""
        context.update(
            request=request,
            csrf=config.csrf_token,
            target=target,
            actions=target.allow_actions,
            outcomes=OUTCOMES,
        )
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    def page(name: str, loader: Callable[[Request], Any] | None = None) -> Endpoint:
        """A GET endpoint rendering ``name`` with what ``loader`` reads (in a thread)."""
        async def endpoint(request: Request) -> Response:
            backend.visited()
            context: dict[str, Any] = {}
            if loader is not None:
                try:
                    context = await run_in_threadpool(loader, request)
                except NotFound as exc:
                    return render(request, name, status_code=404, error=str(exc))
                except ConsoleError as exc:
                    context = {"error": str(exc)}
                except ValueError as exc:
                    return render(request, name, status_code=400, error=str(exc))
                except Exception as exc:  # an AWS or network failure: a message, never a traceback
                    context = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            return render(request, name, **context)

        return endpoint

    # -- loaders --------------------------------------------------------------------------------

    def overview(_request: Request) -> dict[str, Any]:
        """Overview numbers."""
        return {"overview": backend.overview()}

    def feed(request: Request) -> dict[str, Any]:
        """The gateway's requests, filtered by outcome and text."""
        text = request.query_params.get("q", "").strip().lower()
        outcome = request.query_params.get("outcome", "")
        rows = backend.requests(limit=None)
        if outcome:
            rows = [r for r in rows if r["counts"].get(outcome)]
        if text:
            fields = ("source", "account", "path", "reason", "externalIds", "status", "method")
            rows = [r for r in rows if text in json.dumps([r.get(f) for f in fields], ensure_ascii=False).lower()]
        return {"rows": rows[:200], "total": len(rows), "q": text, "outcome": outcome}

    def trace(request: Request) -> dict[str, Any]:
        """Claims matching the search, and the trace of the one found."""
        params = request.query_params
        query = (params.get("q") or params.get("externalId") or "").strip()
        source, account = params.get("source", "").strip(), params.get("account", "").strip()
        context: dict[str, Any] = {"q": query, "source": source, "account": account}
        if not query:
            return context
        claims = backend.find_claims(query, source, account)
        context["claims"] = claims
        if len(claims) == 1:
            context["trace"] = backend.trace(str(claims[0]["pk"]), partition=params.get("partition") or None)
        return context

    def queue_list(queue: str) -> Callable[[Request], dict[str, Any]]:
        """The loader of a queue's listing."""
        def load(request: Request) -> dict[str, Any]:
            limit = _int(request.query_params.get("limit"), PEEK_LIMIT, 1, 200)
            stats = backend.queue_stats(queue)
            messages = backend.peek(queue, limit, depth=int(stats["visible"]) + int(stats["in_flight"]))
            return {"queue": queue, "messages": messages, "stats": stats, "limit": limit,
                    "as_of": backend.snapshot_age(queue)}

        return load

    def message(request: Request) -> dict[str, Any]:
        """One queued message, and for an unmapped record its re-map preview."""
        queue = _queue(request.path_params["queue"])
        found = backend.message(queue, request.path_params["message_id"])
        if found is None:
            raise NotFound("that message is no longer on the queue (replayed, deleted or expired)")
        context: dict[str, Any] = {"queue": queue, "message": found}
        if queue == "unmapped":
            context["remap"] = backend.remap(found)
        return context

    def playground(request: Request) -> dict[str, Any]:
        """The playground's form, filled from an unmapped record or a source."""
        from dmhub_adapter.mapping.config import available_sources

        sources = available_sources(backend.env.get("MAPPINGS_DIR"))
        context: dict[str, Any] = {"sources": sources, "source": request.query_params.get("source", ""),
                                   "account": "demo", "payload": "", "headers": "", "yaml": ""}
        origin = request.query_params.get("from", "")
        if origin:
            found = backend.message("unmapped", origin)
            if found is None:
                raise NotFound("that unmapped record is no longer on the queue")
            context.update(source=found.source, account=found.account, payload=found.payload or "",
                           headers="\n".join(f"{k}: {v}" for k, v in found.headers.items()))
        if context["source"] and not context["yaml"]:
            context["yaml"] = _mapping_text(context["source"], backend.env.get("MAPPINGS_DIR"))
        return context

    def events(request: Request) -> dict[str, Any]:
        """DM Hub's events matching the form, once it is submitted."""
        params = request.query_params
        form = {name: params.get(name, "").strip() for name in ("customer", "types", "since", "until", "partition")}
        context: dict[str, Any] = {"form": form}
        if not params.get("run"):
            return context
        filters: dict[str, Any] = {"max": _int(params.get("max"), 50, 1, 1000)}
        if form["customer"]:
            if not form["customer"].isdigit():
                raise ValueError("customer is DM Hub's numeric customer id")
            filters["customer_id"] = int(form["customer"])
        if form["types"]:
            filters["event"] = form["types"]
        if form["since"]:
            filters["last_updated_from"] = _dmhub_time(form["since"])
        if form["until"]:
            filters["last_updated_to"] = _dmhub_time(form["until"])
        if form["partition"]:
            filters["partition"] = form["partition"]
        context["events"] = backend.dmhub_events(**filters)
        return context

    # -- actions --------------------------------------------------------------------------------

    async def act(request: Request) -> Response:
        """Replay or delete selected (or all) messages of a queue."""
        try:
            queue = _queue(request.path_params["queue"])
        except NotFound as exc:
            return render(request, "result.html", status_code=404, error=str(exc))
        form = await request.form()
        action = str(form.get("action") or "")
        ids = [str(v) for v in form.getlist("id")]
        everything = action == "replay-all"
        action = "replay" if everything else action
        if action == "delete" and form.get("confirm") != "yes":
            return render(request, "result.html", status_code=400, queue=queue,
                          error="deleting needs the confirmation box ticked")
        if action not in ("replay", "delete"):
            return render(request, "result.html", status_code=400, queue=queue, error="choose replay or delete")
        if not everything and not ids:
            return render(request, "result.html", status_code=400, queue=queue, error="select messages first")
        try:
            outcome = await run_in_threadpool(backend.act, queue, action, None if everything else ids)
        except ConsoleError as exc:
            return render(request, "result.html", status_code=403, queue=queue, error=str(exc))
        except Exception as exc:  # AWS unreachable or refusing: a message, never a traceback
            return render(request, "result.html", status_code=502, queue=queue,
                          error=f"{type(exc).__name__}: {str(exc)[:300]}")
        return render(request, "result.html", queue=queue, outcome=outcome)

    async def try_mapping(request: Request) -> Response:
        """Map the pasted payload with the edited (or current) mapping."""
        form = await request.form()
        source = str(form.get("source") or "").strip()
        payload = str(form.get("payload") or "")
        yaml_text = str(form.get("yaml") or "")
        try:
            headers = _headers(str(form.get("headers") or ""))
        except ValueError as exc:
            return render(request, "playground_result.html", status_code=400, result={"error": str(exc)})
        if not source:
            return render(request, "playground_result.html", status_code=400,
                          result={"error": "pick a source"})
        result = await run_in_threadpool(
            preview_mapping, source, payload.encode("utf-8"), headers,
            account=str(form.get("account") or "demo"), yaml_text=yaml_text or None,
            mappings_dir=backend.env.get("MAPPINGS_DIR"))
        return render(request, "playground_result.html", result=result)

    async def static_guard(request: Request) -> Response:
        """Anything else: 404."""
        return PlainTextResponse("not found", status_code=404)

    routes = [
        Route("/", page("overview.html", overview)),
        Route("/fragments/overview", page("overview_numbers.html", overview)),
        Route("/webhooks", page("webhooks.html", feed)),
        Route("/fragments/requests", page("requests_rows.html", feed)),
        Route("/trace", page("trace.html", trace)),
        Route("/dlq", page("queue.html", queue_list("dlq"))),
        Route("/unmapped", page("queue.html", queue_list("unmapped"))),
        Route("/queues/{queue}/messages/{message_id}", page("message.html", message)),
        Route("/queues/{queue}/act", act, methods=["POST"]),
        Route("/playground", page("playground.html", playground)),
        Route("/playground/try", try_mapping, methods=["POST"]),
        Route("/events", page("events.html", events)),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        Route("/{rest:path}", static_guard),
    ]
    return Starlette(routes=routes, middleware=[Middleware(AccessMiddleware, config=config)])


def _queue(name: str) -> str:
    if name not in ("dlq", "unmapped"):
        raise NotFound(f"no queue {name!r} here (dlq or unmapped)")
    return name


def _int(value: str | None, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a whole number") from exc
    return max(low, min(high, number))


def _dmhub_time(value: str) -> str:
    """A datetime-local input (2024-01-01T10:00) or a UTC time, as DM Hub's format."""
    from dmhub_adapter.model.customer_event import parse_dmhub_date

    text = value if value.endswith("Z") else value + (":00Z" if len(value) == 16 else "Z")
    parse_dmhub_date(text)  # raises ValueError with the reason
    return text


def _headers(text: str) -> dict[str, str]:
    """Headers as ``Name: value`` lines or a JSON object."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"headers: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("headers: a JSON object of name → value")
        return {str(k): str(v) for k, v in data.items()}
    headers = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"headers, line {number}: write it as 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _mapping_text(source: str, mappings_dir: str | None) -> str:
    from dmhub_adapter.mapping.config import mapping_path

    try:
        path = mapping_path(source, mappings_dir)
    except (LookupError, ValueError):
        return ""
    return path.read_text(encoding="utf-8") if path is not None else ""
