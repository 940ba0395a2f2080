"""DM Hub v1 HTTP client (httpx): tokens, customer events, customer identities.

One pooled :class:`httpx.Client` per instance; create one :class:`DmhubClient` per container
and reuse it. The access token travels as the ``access_token`` query parameter (DM Hub
accepts nothing else), so URLs are never logged: error messages name the path only, and a
filter redacts the token from httpx's own request log.

Every answer is classified by :func:`classify` (see :mod:`dmhub_adapter.dmhub.errors` for the
table): the body of a 2xx is always read, because DM Hub reports token and validation
errors inside HTTP 200.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar

import httpx

from dmhub_adapter.dmhub.errors import (
    CredentialsError,
    DmhubError,
    DmhubValidationError,
    HttpError,
    RateLimited,
    TokenError,
    TransportError,
    UnexpectedResponse,
)
from dmhub_adapter.model.customer_event import CustomerEvent, StoredCustomerEvent

QUERY_MAX_LIMIT = 1000
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 5.0
_BODY_EXCERPT = 300
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


def classify(response: httpx.Response, what: str) -> Any:
    """The decoded JSON of a successful answer, or the typed error the answer stands for."""
    status = response.status_code
    if status == 429:
        raise RateLimited(
            f"{what}: rate limited: {_excerpt(response)}",
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    if status >= 400:
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
        error_code = data.get("error_code")
        if error_code not in (None, 0, "0"):
            description = data.get("error_description") or data.get("error_msg") or data.get("message") or ""
            raise TokenError(f"{what}: error_code {error_code} {description}".rstrip(), error_code=error_code)
        error = data.get("error")
        if isinstance(error, dict):
            field_errors = error.get("fieldErrors") or []
            raise DmhubValidationError(
                f"{what}: {error.get('message') or 'refused'}",
                code=str(error["code"]) if error.get("code") is not None else None,
                field_errors=[e for e in field_errors if isinstance(e, dict)],
            )
        if isinstance(error, str) and error:
            raise DmhubValidationError(f"{what}: {error}: {data.get('error_description') or ''}".rstrip(": "))
    return data


@dataclass(frozen=True)
class Timeouts:
    """Connect and read timeouts of every DM Hub call, in seconds."""
    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    def httpx(self) -> httpx.Timeout:
        """The same limits as an `httpx.Timeout` (writes share the read limit, the pool the connect limit)."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)


class DmhubClient:
    """DM Hub v1 calls. Calls that need a token take it from ``token_source`` and, when DM Hub
    refuses it, ask the source to renew it once and repeat the call."""

    def __init__(
        self,
        base_url: str,
        *,
        token_source: TokenSource | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 32,
        on_response: Callable[[str, float], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
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

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        deadline: float | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = self._timeout(deadline)
        started = time.perf_counter()
        try:
            if timeout is None:
                response = self._http.request(method, path, params=query, json=json)
            else:
                response = self._http.request(method, path, params=query, json=json, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise TransportError(f"{what}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            # the exception text can quote the URL, and with it the token
            raise TransportError(f"{what}: {type(exc).__name__}: {redact(str(exc))}") from None
        if self.on_response is not None:
            self.on_response(what, time.perf_counter() - started)
        return classify(response, what)

    def _authorized(self, call: Callable[[str], T], deadline: float | None) -> T:
        if self.token_source is None:
            raise CredentialsError("this DM Hub client has no token source")
        token = self.token_source.get(deadline=deadline)
        try:
            return call(token)
        except TokenError:
            token = self.token_source.renew(token, deadline=deadline)
            return call(token)

    # -- token ------------------------------------------------------------------------------

    def fetch_token(self, app_id: str, secret: str) -> TokenGrant:
        """``GET /security/accesstoken`` — mints a new token, which invalidates the previous one."""
        try:
            data = self._request(
                "GET",
                "/security/accesstoken",
                "token",
                params={"grant_type": "client_credentials", "appid": app_id, "secret": secret},
            )
        except TokenError as exc:
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
        self, event: CustomerEvent | Mapping[str, Any], *, deadline: float | None = None
    ) -> StoredCustomerEvent:
        """``POST /v1/customerevents`` → the stored event with its ``id``. Never sends ``id`` or
        ``lastUpdated``; DM Hub deduplicates on ``externalId``. No call outlives ``deadline``
        (a ``time.monotonic()`` value)."""
        if not isinstance(event, CustomerEvent):
            event = CustomerEvent.model_validate(dict(event))
        body = event.to_request()
        data = self._authorized(
            lambda token: self._request(
                "POST", "/v1/customerevents", "create event", params={"access_token": token}, json=body,
                deadline=deadline,
            ),
            deadline,
        )
        return self._stored(data, "create event")

    def get_event(self, event_id: int | str, *, partition: str | int | None = None) -> StoredCustomerEvent:
        """``GET /v1/customerevents/{id}``; DM Hub answers an unknown id with HTTP 500."""
        path = f"/v1/customerevents/{int(event_id)}"
        data = self._authorized(
            lambda token: self._request(
                "GET", path, "get event", params={"access_token": token, "partition": partition}
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
            "partition": partition,
            "max": max,
            "rows": rows,
            "page": page,
            "sidx": sidx,
            "sord": sord,
        }
        data = self._authorized(
            lambda token: self._request(
                "GET", "/v1/customerevents", "query events", params={"access_token": token, **params}
            ),
            None,
        )
        if isinstance(data, dict):
            # some deployments wrap lists in a paging envelope
            data = data.get("rows") or data.get("data") or data.get("content") or []
        if not isinstance(data, list):
            raise UnexpectedResponse(200, "query events: answer is not a list")
        return [self._stored(item, "query events") for item in data]

    @staticmethod
    def _stored(data: Any, what: str) -> StoredCustomerEvent:
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
                params={"access_token": token, "identityType": identity_type, "identityValue": identity_value},
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
                "POST", "/v1/customerandidentities", "customer upsert", params={"access_token": token}, json=body,
                deadline=deadline,
            ),
            deadline,
        )
        if isinstance(data, dict) and isinstance(data.get("customer"), dict):
            data = data["customer"]
        if not isinstance(data, dict) or data.get("id") is None:
            raise UnexpectedResponse(200, "customer upsert: answer carries no customer id")
        return data


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is a DM Hub failure worth another try."""
    return isinstance(error, DmhubError) and error.retryable
