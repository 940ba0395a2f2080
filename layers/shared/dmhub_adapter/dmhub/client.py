"""DM Hub HTTP client (httpx): tokens, customer events, customer identities, the collector.

Two API generations (``api``): **v1** (``GET /security/accesstoken``, the token as the
``access_token`` query parameter) and **v2** (``POST /v2/oauth2/token`` with HTTP Basic
``appId:secret``, the token as ``Authorization: Bearer``). A DM Hub app created as a "new
version" app speaks v2 only.

One pooled :class:`httpx.Client` per instance; create one :class:`DmhubClient` per container
and reuse it. URLs are never logged: error messages name the path only, and a filter redacts
the token from httpx's own request log.

Every answer is classified by :func:`classify` (see :mod:`dmhub_adapter.dmhub.errors` for the
table): the body of a 2xx is always read, because DM Hub v1 reports token and validation
errors inside HTTP 200.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import httpx

from dmhub_adapter.dmhub.errors import (
    CredentialsError,
    DmhubBodyError,
    DmhubError,
    DmhubValidationError,
    HttpError,
    RateLimited,
    TokenError,
    TransportError,
    UnexpectedResponse,
)
from dmhub_adapter.model.rules import event_id as parse_event_id
from dmhub_adapter.model.wire import SendableEvent

if TYPE_CHECKING:
    from dmhub_adapter.model.customer_event import StoredCustomerEvent

QUERY_MAX_LIMIT = 1000
#: the collector's batch limit ("事件总数不能超过 100")
COLLECTOR_BATCH_MAX = 100
ApiGeneration = Literal["v1", "v2"]
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 5.0
_BODY_EXCERPT = 300
#: URLs kept parsed (paths x tokens); a handful are in use at any time
_URL_CACHE_SIZE = 64
_TOKEN_RE = re.compile(r"(access_token=|secret=)[^&\s\"']*")

T = TypeVar("T")


def redact(text: str) -> str:
    """Blank out ``access_token=`` and ``secret=`` values in a URL or message."""
    return _TOKEN_RE.sub(r"\1***", text)


class _RedactFilter(logging.Filter):
    """httpx logs every request URL at INFO; the URL carries the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(str(arg)) if isinstance(arg, (str, httpx.URL)) else arg for arg in args)
        record.msg = redact(str(record.msg))
        return True


for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactFilter) for f in _logger.filters):
        _logger.addFilter(_RedactFilter())


@dataclass(frozen=True)
class TokenGrant:
    """An access token as DM Hub granted it, with the time it was fetched."""
    access_token: str
    expires_in: int
    #: epoch seconds when it was fetched
    fetched_at: float

    @property
    def expires_at(self) -> float:
        """Epoch seconds at which DM Hub stops accepting the token."""
        return self.fetched_at + self.expires_in


class TokenSource(Protocol):
    """Hands out the access token and renews it after DM Hub refused one.

    ``deadline`` (a ``time.monotonic()`` value) bounds any waiting for another instance."""

    def get(self, *, deadline: float | None = None) -> str:
        """The token to use now."""
        ...

    def renew(self, rejected: str, *, deadline: float | None = None) -> str:
        """A token to use instead of ``rejected`` (refreshing only if it is still current)."""
        ...

    def reconsider(self, rejected: str, *, deadline: float | None = None) -> str | None:
        """After a body error on ``rejected``: a token to retry with, or None when the token
        is not the problem."""
        ...


class StaticToken:
    """A fixed token (tests, or a token obtained elsewhere); cannot renew."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get(self, *, deadline: float | None = None) -> str:
        """The fixed token."""
        return self._token

    def renew(self, rejected: str, *, deadline: float | None = None) -> str:
        """Always fails: a fixed token cannot be replaced."""
        raise TokenError("the access token was refused and this token source cannot renew it")

    def reconsider(self, rejected: str, *, deadline: float | None = None) -> str | None:
        """None: a fixed token cannot be replaced, so a body error stands."""
        return None


@dataclass(frozen=True)
class IdentityRecord:
    """One customer identity as DM Hub's identity API returns it."""
    customer_id: int
    identity_type: str
    identity_value: str
    identity_name: str | None = None


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:_BODY_EXCERPT] + ("…" if len(text) > _BODY_EXCERPT else "")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _body_code(data: dict[str, Any]) -> int | str | None:
    code = data.get("error_code")
    return None if code in (None, 0, "0", "") else code


def classify(response: httpx.Response, what: str, api: ApiGeneration = "v1") -> Any:
    """The decoded JSON of a successful answer, or the typed error the answer stands for."""
    status = response.status_code
    if status == 429:
        raise RateLimited(
            f"{what}: rate limited: {_excerpt(response)}",
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    if api == "v2" and status == 401:
        raise TokenError(f"{what}: HTTP 401: {_excerpt(response)}")
    if status >= 400:
        if api == "v2" and 400 <= status < 500:
            _v2_error(response, what)
        raise HttpError(status, f"{what}: {_excerpt(response)}")
    if status == 204 or not response.content:
        if status == 200 or status == 201:
            raise UnexpectedResponse(status, f"{what}: empty body")
        return None
    try:
        data = response.json()
    except ValueError as exc:
        raise UnexpectedResponse(status, f"{what}: body is not JSON: {_excerpt(response)}") from exc
    if isinstance(data, dict):
        error_code = _body_code(data)
        if error_code is not None:
            description = str(data.get("error_description") or data.get("error_msg") or data.get("message") or "")
            raise DmhubBodyError(
                f"{what}: error_code {error_code} {description}".rstrip(), error_code=error_code,
                description=description[:_BODY_EXCERPT],
            )
        error = data.get("error")
        if isinstance(error, dict):
            if api == "v2" and _names_token(error):
                raise TokenError(f"{what}: {error.get('message') or error.get('code')}")
            field_errors = error.get("fieldErrors") or []
            raise DmhubValidationError(
                f"{what}: {error.get('message') or 'refused'}",
                code=str(error["code"]) if error.get("code") is not None else None,
                field_errors=[e for e in field_errors if isinstance(e, dict)],
            )
        if isinstance(error, str) and error:
            raise DmhubValidationError(f"{what}: {error}: {data.get('error_description') or ''}".rstrip(": "))
        if data.get("success") is False:
            raise DmhubValidationError(f"{what}: refused: {data.get('message') or _excerpt(response)}")
    return data


def _names_token(error: Mapping[str, Any]) -> bool:
    text = f"{error.get('code') or ''} {error.get('message') or ''}".lower()
    return "token" in text


def _v2_error(response: httpx.Response, what: str) -> None:
    """A v2 4xx with DM Hub's error object: a token error or a permanent refusal."""
    try:
        data = response.json()
    except ValueError:
        return
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return
    if _names_token(error):
        raise TokenError(f"{what}: HTTP {response.status_code}: {error.get('message') or error.get('code')}")
    field_errors = error.get("fieldErrors") or []
    raise DmhubValidationError(
        f"{what}: HTTP {response.status_code}: {error.get('message') or 'refused'}",
        code=str(error["code"]) if error.get("code") is not None else None,
        field_errors=[e for e in field_errors if isinstance(e, dict)],
    )


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts of every DM Hub call, in seconds."""
    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    def httpx(self) -> httpx.Timeout:
        """The same limits as an `httpx.Timeout` (writes share the read limit, the pool the connect limit)."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)


class DmhubClient:
    """DM Hub calls. Calls that need a token take it from ``token_source``; when DM Hub refuses
    the token (v2: HTTP 401) the source renews it once and the call is repeated; after a body
    error (v1 ``error_code``) the source is asked to reconsider the token (see
    :meth:`~dmhub_adapter.dmhub.token.SharedToken.reconsider`)."""

    def __init__(
        self,
        base_url: str,
        *,
        api: ApiGeneration = "v1",
        token_source: TokenSource | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 32,
        on_response: Callable[[str, float], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api: ApiGeneration = api
        self.token_source = token_source
        self.timeouts = timeouts or Timeouts()
        #: called with (operation, seconds) after every completed HTTP exchange (metrics)
        self.on_response = on_response
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeouts.httpx(),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": "dmhub-adapter"},
            follow_redirects=False,
        )
        #: parsed URLs of the calls, by (path, token): see :meth:`_url`
        self._urls: dict[tuple[str, Any], httpx.URL] = {}

    def with_token_source(self, token_source: TokenSource) -> DmhubClient:
        """A client that shares this one's connection pool and calls DM Hub with ``token_source``.

        The sender's wiring needs it: the shared token fetches through a client without a
        token source, and the event calls then use the token through this one::

            http = DmhubClient(base_url)
            token = SharedToken(store=store, fetch=lambda: http.fetch_token(app_id, secret))
            dmhub = http.with_token_source(token)
        """
        other = copy.copy(self)
        other.token_source = token_source
        return other

    def close(self) -> None:
        """Close the connection pool (shared with clients made by :meth:`with_token_source`)."""
        self._http.close()

    def __enter__(self) -> DmhubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def _timeout(self, deadline: float | None) -> httpx.Timeout | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0.05:
            raise TransportError("no time left for another DM Hub call before the deadline")
        return httpx.Timeout(
            connect=min(self.timeouts.connect, left),
            read=min(self.timeouts.read, left),
            write=min(self.timeouts.read, left),
            pool=min(self.timeouts.connect, left),
        )

    def _url(self, path: str, query: Mapping[str, Any]) -> httpx.URL:
        """The URL of a call: ``path`` on the base URL with ``query``, as httpx's client merges them.

        Parsing and quoting a URL is most of the CPU httpx spends building a request, and the
        event calls' URLs differ only by the token: those (path alone, or path and token) are
        kept, a bounded few, so a batch's calls reuse one parsed URL."""
        token_only = not query or (len(query) == 1 and "access_token" in query)
        key = (path, query.get("access_token")) if token_only else None
        if key is not None:
            found = self._urls.get(key)
            if found is not None:
                return found
        merge = httpx.URL(path)
        if merge.is_relative_url:
            base = self._http.base_url  # httpx keeps it ending in "/"
            url = base.copy_with(raw_path=base.raw_path + merge.raw_path.lstrip(b"/"))
        else:
            url = merge
        if query:
            url = httpx.URL(url, params=query)
        if key is not None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()  # a renewed token's URLs replace the old ones
            self._urls[key] = url
        return url

    def _headers(self, extra: Mapping[str, str]) -> httpx.Headers:
        """The client's headers with ``extra`` over them (as httpx's client merges them)."""
        if not extra:
            return self._http.headers
        merged = httpx.Headers(self._http.headers)
        merged.update(extra)
        return merged

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        deadline: float | None = None,
        token: str | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        sent_headers = dict(headers or {})
        if token is not None:
            if self.api == "v2":
                sent_headers["Authorization"] = f"Bearer {token}"
            else:
                query["access_token"] = token
        timeout = self._timeout(deadline)
        started = time.perf_counter()
        try:
            request = httpx.Request(
                method,
                self._url(path, query),
                json=json,
                data=data,
                headers=self._headers(sent_headers),
                cookies=self._http.cookies or None,
                extensions={} if timeout is None else {"timeout": timeout.as_dict()},
            )
            response = self._http.send(request)
        except httpx.TimeoutException as exc:
            raise TransportError(f"{what}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            # the exception text can quote the URL, and with it the token
            raise TransportError(f"{what}: {type(exc).__name__}: {redact(str(exc))}") from None
        if self.on_response is not None:
            self.on_response(what, time.perf_counter() - started)
        return classify(response, what, self.api)

    def _authorized(self, call: Callable[[str], T], deadline: float | None) -> T:
        """``call`` with the current token; a token error renews it once, a body error has the
        source reconsider it (at most twice: a newer stored token, then a refreshed one)."""
        source = self.token_source
        if source is None:
            raise CredentialsError("this DM Hub client has no token source")
        token = source.get(deadline=deadline)
        renewed = False
        reconsidered = 0
        while True:
            try:
                return call(token)
            except TokenError:
                if renewed:
                    raise
                renewed = True
                token = source.renew(token, deadline=deadline)
            except DmhubBodyError:
                replacement = source.reconsider(token, deadline=deadline) if reconsidered < 2 else None
                if replacement is None:
                    raise
                reconsidered += 1
                token = replacement

    # -- token ------------------------------------------------------------------------------

    def fetch_token(self, app_id: str, secret: str) -> TokenGrant:
        """Mint a new token, which invalidates the previous one: v1 ``GET /security/accesstoken``,
        v2 ``POST /v2/oauth2/token`` (HTTP Basic ``appId:secret``, ``grant_type=client_credentials``)."""
        try:
            if self.api == "v2":
                basic = base64.b64encode(f"{app_id}:{secret}".encode()).decode("ascii")
                data = self._request(
                    "POST",
                    "/v2/oauth2/token",
                    "token",
                    data={"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {basic}"},
                )
            else:
                data = self._request(
                    "GET",
                    "/security/accesstoken",
                    "token",
                    params={"grant_type": "client_credentials", "appid": app_id, "secret": secret},
                )
        except (TokenError, DmhubBodyError, DmhubValidationError) as exc:
            raise CredentialsError(f"DM Hub refused the app credentials ({exc.message})") from None
        except HttpError as exc:
            if 400 <= exc.status < 500 and exc.status not in (408, 429):
                raise CredentialsError(f"DM Hub refused the app credentials ({exc.message})") from None
            raise
        if not isinstance(data, dict) or not data.get("access_token"):
            raise UnexpectedResponse(200, "token: answer carries no access_token")
        try:
            expires_in = int(data.get("expires_in") or 7200)
        except (TypeError, ValueError):
            expires_in = 7200
        return TokenGrant(access_token=str(data["access_token"]), expires_in=expires_in, fetched_at=time.time())

    # -- customer events ----------------------------------------------------------------------

    def create_event(
        self, event: SendableEvent | Mapping[str, Any], *, deadline: float | None = None
    ) -> StoredCustomerEvent:
        """``POST /v1/customerevents`` → the stored event with its ``id``. Never sends ``id`` or
        ``lastUpdated``; DM Hub deduplicates on ``externalId``. No call outlives ``deadline``
        (a ``time.monotonic()`` value). A mapping is validated as a ``CustomerEvent`` first."""
        if isinstance(event, Mapping):
            from dmhub_adapter.model.customer_event import CustomerEvent

            event = CustomerEvent.model_validate(dict(event))
        return self._stored(self._post_event(event, deadline), "create event")

    def create_event_id(self, event: SendableEvent, *, deadline: float | None = None) -> int | str:
        """:meth:`create_event` for the sender: DM Hub's id of the new event, read without
        pydantic (the sender's cold start never imports it)."""
        data = self._post_event(event, deadline)
        if not isinstance(data, dict):
            raise UnexpectedResponse(200, "create event: answer is not an object")
        try:
            return parse_event_id(data.get("id"))
        except ValueError as exc:
            raise UnexpectedResponse(200, f"create event: answer is not a stored event: {exc}") from None

    def _post_event(self, event: SendableEvent, deadline: float | None) -> Any:
        body = event.to_request()
        return self._authorized(
            lambda token: self._request(
                "POST", "/v1/customerevents", "create event", token=token, json=body, deadline=deadline,
            ),
            deadline,
        )

    def get_event(self, event_id: int | str, *, partition: str | int | None = None) -> StoredCustomerEvent:
        """``GET /v1/customerevents/{id}``; DM Hub answers an unknown id with HTTP 500."""
        path = f"/v1/customerevents/{int(event_id)}"
        data = self._authorized(
            lambda token: self._request(
                "GET", path, "get event", token=token, params={"partition": partition}
            ),
            None,
        )
        return self._stored(data, "get event")

    def query_events(
        self,
        *,
        customer_id: int | None = None,
        event: str | Sequence[str] | None = None,
        last_updated_from: str | None = None,
        last_updated_to: str | None = None,
        id_from: int | None = None,
        id_to: int | None = None,
        partition: str | int | None = None,
        max: int | None = None,  # DM Hub's parameter name
        rows: int | None = None,
        page: int | None = None,
        sidx: str | None = None,
        sord: str | None = None,
    ) -> list[StoredCustomerEvent]:
        """``GET /v1/customerevents`` with every query parameter of the API."""
        if max is not None and not 1 <= max <= QUERY_MAX_LIMIT:
            raise ValueError(f"max must be between 1 and {QUERY_MAX_LIMIT}, got {max}")
        if rows is not None and rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        if page is not None and page < 1:
            raise ValueError(f"page starts at 1, got {page}")
        if sord is not None and sord not in ("asc", "desc"):
            raise ValueError(f"sord must be asc or desc, got {sord!r}")
        events = event if isinstance(event, str) or event is None else ",".join(event)
        params = {
            "customerId": customer_id,
            "event": events,
            "lastUpdatedFrom": last_updated_from,
            "lastUpdatedTo": last_updated_to,
            "idFrom": id_from,
            "idTo": id_to,
            "partition": partition,
            "max": max,
            "rows": rows,
            "page": page,
            "sidx": sidx,
            "sord": sord,
        }
        data = self._authorized(
            lambda token: self._request(
                "GET", "/v1/customerevents", "query events", token=token, params=params
            ),
            None,
        )
        if isinstance(data, dict):
            # some deployments wrap lists in a paging envelope
            data = data.get("rows") or data.get("data") or data.get("content") or []
        if not isinstance(data, list):
            raise UnexpectedResponse(200, "query events: answer is not a list")
        return [self._stored(item, "query events") for item in data]

    def create_event_v2(
        self, event: SendableEvent, identity: tuple[str, str] | None, *, deadline: float | None = None
    ) -> int | str | None:
        """``POST /v2/customerEvents``: the event keyed by ``identity`` (type, value) — no
        customer lookup — or by its ``customerId``; custom attributes go with their ``c_``
        prefix. Returns DM Hub's id of the event when the answer gives one."""
        body = v2_event_body(event, identity)
        data = self._authorized(
            lambda token: self._request(
                "POST", "/v2/customerEvents", "create event", token=token, json=body, deadline=deadline
            ),
            deadline,
        )
        return _created_id(data)

    def push_events(self, events: Sequence[Mapping[str, Any]], *, deadline: float | None = None) -> None:
        """``POST /v1/collector/batchPushEvents`` with ``{"events": [...]}`` (at most 100, each
        keyed by ``identityType``/``identityValue``); DM Hub answers ``{"success": true}``."""
        if not 1 <= len(events) <= COLLECTOR_BATCH_MAX:
            raise ValueError(f"a collector batch holds 1 to {COLLECTOR_BATCH_MAX} events, got {len(events)}")
        body = {"events": [dict(event) for event in events]}
        self._authorized(
            lambda token: self._request(
                "POST", "/v1/collector/batchPushEvents", "push events", token=token, json=body, deadline=deadline
            ),
            deadline,
        )

    def push_event(self, event: Mapping[str, Any], *, deadline: float | None = None) -> None:
        """``POST /v1/collector/pushevent``: one identity-keyed event (isolates a bad one of a batch)."""
        body = dict(event)
        self._authorized(
            lambda token: self._request(
                "POST", "/v1/collector/pushevent", "push event", token=token, json=body, deadline=deadline
            ),
            deadline,
        )

    @staticmethod
    def _stored(data: Any, what: str) -> StoredCustomerEvent:
        from dmhub_adapter.model.customer_event import StoredCustomerEvent

        if not isinstance(data, dict):
            raise UnexpectedResponse(200, f"{what}: answer is not an object")
        try:
            return StoredCustomerEvent.model_validate(data)
        except ValueError as exc:
            raise UnexpectedResponse(200, f"{what}: answer is not a stored event: {exc}") from None

    # -- identities ---------------------------------------------------------------------------

    def lookup_identity(
        self, identity_type: str, identity_value: str, *, deadline: float | None = None
    ) -> list[IdentityRecord]:
        """``GET /v1/customeridentities?identityType=&identityValue=`` (empty when unknown)."""
        data = self._authorized(
            lambda token: self._request(
                "GET",
                "/v1/customeridentities",
                "identity lookup",
                token=token,
                params={"identityType": identity_type, "identityValue": identity_value},
                deadline=deadline,
            ),
            deadline,
        )
        if data is None:
            return []
        if isinstance(data, dict):
            data = data.get("rows") or data.get("data") or []
        if not isinstance(data, list):
            raise UnexpectedResponse(200, "identity lookup: answer is not a list")
        records: list[IdentityRecord] = []
        for item in data:
            if not isinstance(item, dict) or item.get("customerId") is None:
                continue
            try:
                customer_id = int(item["customerId"])
            except (TypeError, ValueError):
                continue
            records.append(
                IdentityRecord(
                    customer_id=customer_id,
                    identity_type=str(item.get("identityType") or identity_type),
                    identity_value=str(item.get("identityValue") or identity_value),
                    identity_name=item.get("identityName"),
                )
            )
        return records

    def upsert_customer(
        self,
        customer: Mapping[str, Any],
        identities: Sequence[Mapping[str, Any]],
        *,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/customerandidentities``: the customer owning any of the identities is
        updated, else one is created; returns the customer with its ``id``."""
        body = {"customer": dict(customer), "customerIdentities": [dict(i) for i in identities]}
        data = self._authorized(
            lambda token: self._request(
                "POST", "/v1/customerandidentities", "customer upsert", token=token, json=body, deadline=deadline,
            ),
            deadline,
        )
        if isinstance(data, dict) and isinstance(data.get("customer"), dict):
            data = data["customer"]
        if not isinstance(data, dict) or data.get("id") is None:
            raise UnexpectedResponse(200, "customer upsert: answer carries no customer id")
        return data


def collector_event_body(event: SendableEvent, identity: tuple[str, str] | None) -> dict[str, Any]:
    """One collector event: the v1 body keyed by identity (``identityType``/``identityValue``)
    instead of a resolved ``customerId``; custom attributes flat, as in v1."""
    body = event.to_request()
    if identity is not None:
        body["identityType"], body["identityValue"] = identity
    return body


def v2_event_body(event: SendableEvent, identity: tuple[str, str] | None) -> dict[str, Any]:
    """A ``/v2/customerEvents`` body: built-in fields as in v1, custom attributes ``c_``-prefixed,
    ``identityType``/``identityValue`` when an identity keys the event."""
    body: dict[str, Any] = {}
    custom = event.custom_attributes
    for name, value in event.to_request().items():
        if name in custom:
            body[name if name.startswith("c_") else f"c_{name}"] = value
        else:
            body[name] = value
    if identity is not None:
        body["identityType"], body["identityValue"] = identity
    return body


def _created_id(data: Any) -> int | str | None:
    """The new event's id from a create answer (``{"id"}`` or ``{"data": {"id"}}``), read leniently."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    if not isinstance(data, dict) or data.get("id") in (None, ""):
        return None
    try:
        return parse_event_id(data["id"])
    except ValueError:
        return None


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is a DM Hub failure worth another try."""
    return isinstance(error, DmhubError) and error.retryable
