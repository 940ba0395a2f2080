"""The emulator's knobs and its in-memory DM Hub: tokens, events, customers, identities,
counters and planned faults, all behind one lock so concurrent requests stay consistent."""

from __future__ import annotations

import math
import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dmhub_adapter_tools.emulator.rules import (
    EventQuery,
    IdentityInput,
    format_date,
    matches,
    partition_of,
    render_event,
    sort_key,
)

#: endpoint names used by counters, ``fault_endpoints`` and ``fail_next(endpoint=...)``
ENDPOINTS = frozenset(
    {
        "token",
        "events.create",
        "events.get",
        "events.query",
        "identities.query",
        "customers.upsert",
        "customers.get",
        "collector.push",
        "collector.batch",
        "v2.token",
        "v2.events.create",
        "unknown",
    }
)

DEFAULT_APP_ID = "demo-app"
# the public demo credentials of the packaged demo accounts, not a real secret
DEFAULT_SECRET = "demo-secret"  # noqa: S105

# Error codes of DM Hub's security layer (HTTP 200, top-level error_code). DM Hub does not
# publish its numbers; these follow the WeChat-style codes common to Chinese open platforms.
TOKEN_BAD_GRANT = 40002
TOKEN_BAD_APPID = 40013
TOKEN_BAD_SECRET = 40125
ACCESS_TOKEN_MISSING = 41001
ACCESS_TOKEN_INVALID = 40001
ACCESS_TOKEN_EXPIRED = 42001

FIRST_CUSTOMER_ID = 100001
#: arrival times kept for ``count_per_second`` (the oldest are dropped beyond this)
MAX_ARRIVALS = 1_000_000


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most of ``times`` inside any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = low = 0
    for high, moment in enumerate(ordered):
        while ordered[low] <= moment - window:
            low += 1
        best = max(best, high - low + 1)
    return best


def rate_summary(times: Iterable[float]) -> dict[str, Any]:
    """Requests per whole second (epoch seconds as keys) and the most in any one-second window."""
    arrivals = list(times)
    per_second = Counter(int(moment) for moment in arrivals)
    return {
        "requests": len(arrivals),
        "max_in_any_1s_window": max_in_window(arrivals),
        "per_second": {str(second): count for second, count in sorted(per_second.items())},
    }


class EmulatorConfig(BaseModel):
    """The knobs; change them at runtime with ``EmulatorServer.configure`` or
    ``POST /_emulator/config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: appId -> secret of the apps that may fetch tokens
    apps: dict[str, str] = Field(default_factory=lambda: {DEFAULT_APP_ID: DEFAULT_SECRET})
    #: seconds added to every API request (not to control requests)
    latency: float = Field(default=0.0, ge=0, le=120)
    #: share of requests answered with ``error_status``
    error_rate: float = Field(default=0.0, ge=0, le=1)
    #: share of requests answered 429 with a Retry-After header
    throttle_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=503, ge=500, le=599)
    retry_after: int = Field(default=1, ge=0)
    #: endpoints the random faults apply to (None: all)
    fault_endpoints: frozenset[str] | None = None
    #: token lifetime in seconds (DM Hub: 7200)
    token_ttl: float = Field(default=7200.0, gt=0)
    #: registered event types; when set, custom (c_) types must be listed. A list names the
    #: types; a mapping also restricts each type's custom attributes (null: any)
    event_types: dict[str, frozenset[str] | None] | None = None
    #: seed of the fault and token randomness (None: unpredictable)
    seed: int | None = None
    #: DM Hub's rules: "current" (docs since 2018-08/11) or "2018" (the seed)
    rules: Literal["current", "2018"] = "current"
    #: custom attributes a custom event may carry: 5 (the seed) or 16 (current docs)
    custom_attributes: Literal[5, 16] = 5
    #: answer security-layer errors with the code as text ("40001"), as DM Hub was seen to do
    string_error_codes: bool = False
    #: event types refused with a non-token body error: type -> error_code (e.g. 40201)
    refuse_events: dict[str, int | str] = Field(default_factory=dict)
    #: record each API request's arrival time, so ``snapshot()["rate"]`` gives the requests of
    #: every second and the most in any one-second window (a rate cap's check)
    count_per_second: bool = False

    @field_validator("event_types", mode="before")
    @classmethod
    def _event_types(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple, set, frozenset)):
            return {name: None for name in value}
        return value

    @field_validator("fault_endpoints")
    @classmethod
    def _endpoints(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        unknown = sorted((value or frozenset()) - ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown endpoints {unknown}; known: {sorted(ENDPOINTS)}")
        return value

    @model_validator(mode="after")
    def _rates(self) -> EmulatorConfig:
        if self.error_rate + self.throttle_rate > 1:
            raise ValueError("error_rate + throttle_rate must not exceed 1")
        return self

    def updated(self, **changes: Any) -> EmulatorConfig:
        return EmulatorConfig.model_validate({**self.model_dump(), **changes})


@dataclass(frozen=True)
class Fault:
    """A failure answered instead of (or, with ``after``, after processing) a request."""

    status: int
    body: Any = None
    after: bool = False
    retry_after: int | None = None


@dataclass
class _PlannedFailure:
    remaining: int
    fault: Fault
    endpoint: str | None


@dataclass
class _Token:
    app_id: str
    expires_at: float
    status: str  # live | replaced | revoked | expired


class EmulatorState:
    """Thread-safe DM Hub state. Reads return copies, so callers can keep them."""

    def __init__(self, config: EmulatorConfig | None = None, clock: Callable[[], float] | None = None) -> None:
        self._lock = threading.RLock()
        self._initial = config or EmulatorConfig()
        self._clock = clock or time.time
        self.config = self._initial
        self.reset(config=True)

    # ------------------------------------------------------------------ housekeeping
    def reset(self, *, config: bool = True) -> None:
        """Forget events, customers, tokens, counters and planned failures; with ``config``
        also restore the knobs given at construction."""
        with self._lock:
            if config:
                self.config = self._initial
            self._events: dict[int, dict[str, Any]] = {}
            self._by_external: dict[str, int] = {}
            self._by_triple: dict[tuple[str, int, str], int] = {}
            self._next_event_id = 1
            self._customers: dict[int, dict[str, Any]] = {}
            self._identities: dict[tuple[str, str], dict[str, Any]] = {}
            self._next_customer_id = FIRST_CUSTOMER_ID
            self._tokens: dict[str, _Token] = {}
            self._live: dict[str, str] = {}
            self._counters: Counter[str] = Counter()
            self._arrivals: deque[float] = deque(maxlen=MAX_ARRIVALS)
            self._in_flight = 0
            self._failures: deque[_PlannedFailure] = deque()
            self._rng = random.Random(self.config.seed)
            self._offset = 0.0
            self._frozen: float | None = None

    def configure(self, **changes: Any) -> EmulatorConfig:
        with self._lock:
            new = self.config.updated(**changes)
            if "seed" in changes:
                self._rng = random.Random(new.seed)
            self.config = new
            return new

    def now(self) -> float:
        with self._lock:
            return self._frozen if self._frozen is not None else self._clock() + self._offset

    def advance_clock(self, seconds: float) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def set_clock(self, epoch: float | None) -> None:
        """Freeze the emulator's time at ``epoch`` (None: back to the real clock)."""
        with self._lock:
            self._frozen = epoch
            self._offset = 0.0

    # ------------------------------------------------------------------ counters and faults
    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def enter(self, endpoint: str) -> None:
        with self._lock:
            self._counters[f"requests.{endpoint}"] += 1
            if self.config.count_per_second:
                self._arrivals.append(self._clock())  # the base clock: advancing the emulated one skews nothing
            self._in_flight += 1
            self._counters["max_in_flight"] = max(self._counters["max_in_flight"], self._in_flight)

    def leave(self, status: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._counters[f"responses.{status}"] += 1

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
        """Answer the next ``count`` requests (to ``endpoint``, or any) with ``status`` (and
        ``body``: a JSON value or a string); with ``after`` the request is processed first and
        its answer lost, as when a response times out after DM Hub stored the event."""
        if count < 1 or not 100 <= status <= 599:
            raise ValueError("count must be >= 1 and status an HTTP status")
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {sorted(ENDPOINTS)}")
        if status == 429 and retry_after is None:
            retry_after = self.config.retry_after
        with self._lock:
            self._failures.append(_PlannedFailure(count, Fault(status, body, after, retry_after), endpoint))

    def plan(self, endpoint: str) -> tuple[float, Fault | None]:
        """The latency and the fault (if any) for one request to ``endpoint``."""
        with self._lock:
            config = self.config
            for planned in self._failures:
                if planned.endpoint in (None, endpoint):
                    planned.remaining -= 1
                    if planned.remaining == 0:
                        self._failures.remove(planned)
                    self._counters["faults.injected"] += 1
                    return config.latency, planned.fault
            eligible = config.fault_endpoints is None or endpoint in config.fault_endpoints
            if eligible and (config.error_rate or config.throttle_rate):
                draw = self._rng.random()
                if draw < config.error_rate:
                    self._counters["faults.5xx"] += 1
                    return config.latency, Fault(config.error_status)
                if draw < config.error_rate + config.throttle_rate:
                    self._counters["faults.429"] += 1
                    return config.latency, Fault(429, retry_after=config.retry_after)
            return config.latency, None

    # ------------------------------------------------------------------ tokens
    def issue_token(self, params: Mapping[str, str]) -> dict[str, Any]:
        """The body of ``GET /security/accesstoken`` (always HTTP 200)."""
        import hmac

        grant = params.get("grant_type")
        app_id = params.get("appid") or ""
        secret = params.get("secret") or ""
        with self._lock:
            # the published docs spell the grant both ways
            if grant not in ("client_credentials", "client_credential"):
                self._counters["token_rejections"] += 1
                return self.error_body(TOKEN_BAD_GRANT, "invalid grant_type, must be client_credentials")
            expected = self.config.apps.get(app_id)
            if expected is None:
                self._counters["token_rejections"] += 1
                return self.error_body(TOKEN_BAD_APPID, "invalid appid")
            if not hmac.compare_digest(expected.encode(), secret.encode()):
                self._counters["token_rejections"] += 1
                return self.error_body(TOKEN_BAD_SECRET, "invalid secret")
            previous = self._live.get(app_id)
            if previous is not None:
                self._tokens[previous].status = "replaced"
            token = f"{self._rng.getrandbits(128):032x}" if self.config.seed is not None else secrets.token_hex(16)
            ttl = self.config.token_ttl
            self._tokens[token] = _Token(app_id, self.now() + ttl, "live")
            self._live[app_id] = token
            self._counters["token_fetches"] += 1
            return {"error_code": 0, "access_token": token, "expires_in": math.ceil(ttl)}

    def issue_token_v2(self, app_id: str, secret: str) -> dict[str, Any] | None:
        """``POST /v2/oauth2/token`` (HTTP Basic app id and secret): the grant, or None when the
        credentials are refused (answered 401). A v2 token replaces the app's v1 one alike."""
        grant = self.issue_token({"grant_type": "client_credentials", "appid": app_id, "secret": secret})
        if grant.get("error_code") not in (0, "0"):
            return None
        return {"access_token": grant["access_token"], "expires_in": grant["expires_in"], "token_type": "bearer"}

    def check_token(self, token: str | None) -> dict[str, Any] | None:
        """None when ``token`` may call the API, else the security layer's error body."""
        with self._lock:
            if not token:
                self._counters["token_errors"] += 1
                return self.error_body(ACCESS_TOKEN_MISSING, "access_token missing")
            info = self._tokens.get(token)
            if info is None or info.status in ("replaced", "revoked"):
                self._counters["token_errors"] += 1
                return self.error_body(ACCESS_TOKEN_INVALID, "invalid access_token, or access_token is not the latest")
            if info.status == "expired" or self.now() >= info.expires_at:
                self._counters["token_errors"] += 1
                return self.error_body(ACCESS_TOKEN_EXPIRED, "access_token expired")
            return None

    def revoke_token(self, app_id: str | None = None, *, expired: bool = False) -> list[str]:
        """Kill the live token of ``app_id`` (None: every app); callers then get 42001 when
        ``expired`` else 40001. Returns the apps whose token was revoked."""
        with self._lock:
            apps = [app_id] if app_id is not None else list(self._live)
            revoked = []
            for app in apps:
                token = self._live.pop(app, None)
                if token is not None:
                    self._tokens[token].status = "expired" if expired else "revoked"
                    revoked.append(app)
            return revoked

    def current_token(self, app_id: str = DEFAULT_APP_ID) -> str | None:
        with self._lock:
            return self._live.get(app_id)

    # ------------------------------------------------------------------ events
    def save_event(self, clean: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or (dedup) update; returns the rendered record and whether it is new."""
        with self._lock:
            now = format_date(self.now())
            external = clean.get("externalId")
            if external:
                existing = self._by_external.get(external)
            else:
                existing = self._by_triple.get((clean["date"], clean["customerId"], clean["event"]))
            if existing is not None:
                record = self._events[existing]
                self._unindex(record)
                record.update(clean)
                record["lastUpdated"] = now
                self._counters["events_updated"] += 1
                created = False
            else:
                record = {"id": self._next_event_id, **clean, "lastUpdated": now}
                self._next_event_id += 1
                self._events[record["id"]] = record
                self._counters["events_created"] += 1
                created = True
            self._index(record)
            return render_event(record), created

    def _index(self, record: dict[str, Any]) -> None:
        if record.get("externalId"):
            self._by_external[record["externalId"]] = record["id"]
        self._by_triple[(record["date"], record["customerId"], record["event"])] = record["id"]

    def _unindex(self, record: dict[str, Any]) -> None:
        if record.get("externalId") and self._by_external.get(record["externalId"]) == record["id"]:
            del self._by_external[record["externalId"]]
        triple = (record["date"], record["customerId"], record["event"])
        if self._by_triple.get(triple) == record["id"]:
            del self._by_triple[triple]

    def customer_for(self, identity_type: str, identity_value: str) -> int:
        """The customer owning an identity, created with it when unknown (collector and v2
        calls key events by identity; DM Hub does not document the unknown case)."""
        with self._lock:
            known = self._identities.get((identity_type, identity_value))
            if known is not None:
                return int(known["customerId"])
            record, _ = self.upsert_customer({}, [IdentityInput(identity_type, identity_value, None)])
            return int(record["id"])

    def refusal(self, event_type: str | None) -> dict[str, Any] | None:
        """The injected non-token body error for ``event_type`` (``refuse_events``), if any."""
        code = self.config.refuse_events.get(event_type or "")
        if code is None:
            return None
        with self._lock:
            self._counters["refused_events"] += 1
        return self.error_body(code, "permission is not enough")

    def error_body(self, code: int | str, description: str) -> dict[str, Any]:
        """A security-layer error body, the code as text when ``string_error_codes``."""
        return {"error_code": str(code) if self.config.string_error_codes else code, "error_description": description}

    def get_event(self, event_id: int, partition: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._events.get(event_id)
            if record is None or partition_of(record["date"], self.config.rules) != partition:
                return None
            return render_event(record)

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        with self._lock:
            found = [r for r in self._events.values() if matches(r, query)]
            found.sort(key=sort_key(query.sidx), reverse=query.descending)
            return [render_event(r) for r in found[query.page_slice()]]

    def events(self) -> list[dict[str, Any]]:
        """Every stored event (all partitions) in DM Hub's response shape, by id."""
        with self._lock:
            return [render_event(r) for r in sorted(self._events.values(), key=lambda r: r["id"])]

    # ------------------------------------------------------------------ customers
    def upsert_customer(
        self, customer: Mapping[str, Any], identities: Iterable[IdentityInput]
    ) -> tuple[dict[str, Any], bool]:
        """DM Hub's customer-and-identities upsert: the customer owning any of the identities,
        else the one with the same mobile or email, is updated (non-null fields only: the API
        cannot clear fields); else one is created. Identities another customer already owns
        stay with that customer."""
        identities = list(identities)
        fields = {k: v for k, v in customer.items() if k not in ("id", "dateCreated", "lastUpdated")}
        with self._lock:
            now = format_date(self.now())
            owner = next(
                (
                    self._identities[(i.type, i.value)]["customerId"]
                    for i in identities
                    if (i.type, i.value) in self._identities
                ),
                None,
            )
            if owner is None:
                owner = self._match_contact(fields)
            if owner is not None:
                record = self._customers[owner]
                record.update({k: v for k, v in fields.items() if v is not None})
                record["lastUpdated"] = now
                self._counters["customers_updated"] += 1
                created = False
            else:
                record = {
                    "id": self._next_customer_id,
                    **{k: v for k, v in fields.items() if v is not None},
                    "dateCreated": now,
                    "lastUpdated": now,
                }
                self._next_customer_id += 1
                self._customers[record["id"]] = record
                self._counters["customers_created"] += 1
                created = True
            for identity in identities:
                key = (identity.type, identity.value)
                known = self._identities.get(key)
                if known is None:
                    self._identities[key] = {
                        "customerId": record["id"],
                        "identityType": identity.type,
                        "identityValue": identity.value,
                        "identityName": identity.name,
                    }
                elif known["customerId"] == record["id"] and identity.name is not None:
                    known["identityName"] = identity.name
            return dict(record), created

    def _match_contact(self, fields: Mapping[str, Any]) -> int | None:
        for name in ("mobile", "email"):
            value = fields.get(name)
            if value:
                for record in self._customers.values():
                    if record.get(name) == value:
                        return int(record["id"])
        return None

    def get_customer(self, customer_id: int) -> dict[str, Any] | None:
        with self._lock:
            record = self._customers.get(customer_id)
            return dict(record) if record is not None else None

    def find_identities(
        self, identity_type: str | None, identity_value: str | None, customer_ids: frozenset[int] | None
    ) -> list[dict[str, Any]]:
        with self._lock:
            found = [
                dict(i)
                for i in self._identities.values()
                if (identity_type is None or i["identityType"] == identity_type)
                and (identity_value is None or i["identityValue"] == identity_value)
                and (customer_ids is None or i["customerId"] in customer_ids)
            ]
            return found

    def customers(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in sorted(self._customers.values(), key=lambda r: r["id"])]

    def identities(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(i) for i in self._identities.values()]

    # ------------------------------------------------------------------ introspection
    def counters(self) -> dict[str, Any]:
        """``requests``/``responses`` per endpoint/status, ``faults`` by kind, and flat
        totals: token_fetches, token_rejections, token_errors, events_created, events_updated,
        validation_errors, bad_requests, customers_created, customers_updated, max_in_flight."""
        with self._lock:
            out: dict[str, Any] = {"requests": {}, "responses": {}, "faults": {}}
            for key, value in self._counters.items():
                group, _, name = key.partition(".")
                if name and group in out:
                    out[group][name] = value
                else:
                    out[key] = value
            for name in (
                "refused_events",
                "events_pushed",
                "token_fetches",
                "token_rejections",
                "token_errors",
                "events_created",
                "events_updated",
                "validation_errors",
                "bad_requests",
                "customers_created",
                "customers_updated",
                "max_in_flight",
            ):
                out.setdefault(name, 0)
            out["in_flight"] = self._in_flight
            return out

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "config": self.config.model_dump(mode="json"),
                "counters": self.counters(),
                "now": format_date(self.now()),
                "live_tokens": dict(self._live),
                "pending_failures": sum(p.remaining for p in self._failures),
                "rate": rate_summary(self._arrivals) if self.config.count_per_second else None,
                "events": self.events(),
                "customers": self.customers(),
                "identities": self.identities(),
            }

