"""Configuration from the environment: the one module of the runtime that reads it.

Each function has its settings class, read once at init (module load, the Lambda INIT phase):
a missing or malformed variable fails the cold start with one line naming it, instead of the
first request. The names are fixed by the design brief (section 3) and ``template.yaml``.

- :class:`IngestSettings` — the IngestFunction.
- :class:`SenderSettings` — the SenderFunction.
- :class:`Settings` — the stack as the command line sees it: every resource optional, so
  commands that do not touch AWS (``map``, ``check-config``) run without them.

Example::

    settings = IngestSettings.from_env()      # raises SettingsError: "EVENT_QUEUE_URL is not set"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from dmhub_adapter.model.rules import SEED_ATTRIBUTE_BUDGET, AttributeBudget
from dmhub_adapter.records import record

DEFAULT_DMHUB_BASE_URL = "https://api.convertlab.com"
DEFAULT_SECRETS_PREFIX = "dmhub-adapter"
DEFAULT_MAX_BODY_BYTES = 256 * 1024
DEFAULT_CUSTOM_ATTRIBUTES = 5
DEFAULT_TOKEN_MIN_AGE_SECONDS = 60

DmhubApi = Literal["v1", "v2"]
EventEndpoint = Literal["customerevents", "collector"]


class SettingsError(ValueError):
    """A variable is missing or malformed; the message names it and says what it must be."""


class _Environment:
    """Typed reads of one environment mapping; every failure names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def optional(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        return value if value not in (None, "") else default

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(f"environment variable {name} is not set")
        return value

    def integer(self, name: str, default: int, *, low: int = 0, high: int = 2**31) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"environment variable {name} must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"environment variable {name} must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, *, low: float = 0.0, high: float = 1e9) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"environment variable {name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"environment variable {name} must be between {low} and {high}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        return raw.strip().lower() in ("1", "true", "yes", "on", "y", "t")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.optional(name) or default).strip()
        if value not in choices:
            raise SettingsError(f"environment variable {name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def attribute_budget(self) -> AttributeBudget:
        """``DMHUB_CUSTOM_ATTRIBUTES``: 5 (the seed, default) or 16 (current docs)."""
        size = self.integer("DMHUB_CUSTOM_ATTRIBUTES", DEFAULT_CUSTOM_ATTRIBUTES, low=1, high=64)
        try:
            return AttributeBudget.of(size)
        except ValueError:
            raise SettingsError(f"environment variable DMHUB_CUSTOM_ATTRIBUTES must be 5 or 16, got {size}") from None

    def url(self, name: str, default: str) -> str:
        value = (self.optional(name) or default).rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise SettingsError(f"environment variable {name} must be an http(s) URL, got {value!r}")
        return value


def _environ(environ: Mapping[str, str] | None) -> _Environment:
    return _Environment(os.environ if environ is None else environ)


@record(frozen=True)
class Observability:
    """Powertools' service name and metrics namespace, and whether X-Ray tracing is on."""

    service: str
    namespace: str
    tracing: bool

    @classmethod
    def read(cls, env: _Environment, default_service: str) -> Observability:
        """Read the Powertools variables (service name, metrics namespace, tracing switch)."""
        return cls(
            service=env.optional("POWERTOOLS_SERVICE_NAME", default_service) or default_service,
            namespace=env.optional("POWERTOOLS_METRICS_NAMESPACE", "DmhubAdapter") or "DmhubAdapter",
            tracing=not env.flag("POWERTOOLS_TRACE_DISABLED", False),
        )


@record(frozen=True)
class IngestSettings:
    """Everything the IngestFunction reads from its environment.

    ``CLAIM_WAIT_MS`` bounds the wait on a claim another request holds (see ``ingest.handoff``);
    ``MAX_BODY_BYTES`` is the cap of sources that set none; ``UNMAPPED_BUCKET`` keeps unmapped
    records too large for the queue (without it they are refused with 413).
    """

    idempotency_table: str
    event_queue_url: str
    unmapped_queue_url: str
    secrets_prefix: str = DEFAULT_SECRETS_PREFIX
    mappings_dir: str | None = None
    dedup_ttl_days: int = 7
    claim_lease_seconds: int = 30
    claim_wait_seconds: float = 2.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    unmapped_bucket: str | None = None
    #: ``DMHUB_CUSTOM_ATTRIBUTES``: how many custom attributes an event may carry (5 or 16)
    attribute_budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
    observability: Observability = Observability("dmhub-adapter-ingest", "DmhubAdapter", False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IngestSettings:
        """Read and check the variables; raises :class:`SettingsError` naming the first bad one."""
        env = _environ(environ)
        return cls(
            idempotency_table=env.required("IDEMPOTENCY_TABLE"),
            event_queue_url=env.required("EVENT_QUEUE_URL"),
            unmapped_queue_url=env.required("UNMAPPED_QUEUE_URL"),
            secrets_prefix=env.optional("SECRETS_PREFIX", DEFAULT_SECRETS_PREFIX) or DEFAULT_SECRETS_PREFIX,
            mappings_dir=env.optional("MAPPINGS_DIR"),
            dedup_ttl_days=env.integer("DEDUP_TTL_DAYS", 7, low=1, high=3650),
            claim_lease_seconds=env.integer("CLAIM_LEASE_SECONDS", 30, low=1, high=900),
            claim_wait_seconds=env.integer("CLAIM_WAIT_MS", 2000, low=0, high=30_000) / 1000,
            max_body_bytes=env.integer("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, low=1, high=6 * 1024 * 1024),
            unmapped_bucket=env.optional("UNMAPPED_BUCKET"),
            attribute_budget=env.attribute_budget(),
            observability=Observability.read(env, "dmhub-adapter-ingest"),
        )


@record(frozen=True)
class SenderSettings:
    """Everything the SenderFunction reads from its environment.

    ==============================  =======  ==============================================
    ``DMHUB_CONNECT_TIMEOUT``       2        seconds to connect to DM Hub
    ``DMHUB_READ_TIMEOUT``          5        seconds to wait for DM Hub's answer
    ``SENDER_CONCURRENCY``          10       records of a batch sent at the same time
    ``SENDER_MAX_ATTEMPTS``         6        attempts per record and invocation
    ``SENDER_SAFETY_MARGIN_MS``     1000     time kept free before the Lambda timeout
    ``DMHUB_API``                   v1       API generation: v1 or v2 (the app's version)
    ``DMHUB_EVENT_ENDPOINT``        custom…  v1 only: customerevents or collector
    ``DMHUB_CUSTOM_ATTRIBUTES``     5        custom attribute budget: 5 or 16
    ``DMHUB_TOKEN_MIN_AGE``         60       seconds a token must have lived before a body
                                             error may refresh it
    ``DMHUB_MAX_REQUESTS_PER_SECOND``  unset  fleet-wide cap on DM Hub requests (unset: none)
    ``SENDER_MAX_INSTANCES``        5        instances the event source runs at most (its
                                             ``MaximumConcurrency``); the cap is shared by them
    ==============================  =======  ==============================================
    """

    idempotency_table: str
    dead_letter_queue_url: str
    dmhub_base_url: str = DEFAULT_DMHUB_BASE_URL
    secrets_prefix: str = DEFAULT_SECRETS_PREFIX
    dmhub_connect_timeout: float = 2.0
    dmhub_read_timeout: float = 5.0
    concurrency: int = 10
    max_attempts: int = 6
    safety_margin_seconds: float = 1.0
    dmhub_api: DmhubApi = "v1"
    event_endpoint: EventEndpoint = "customerevents"
    attribute_budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
    token_min_age_seconds: float = DEFAULT_TOKEN_MIN_AGE_SECONDS
    dmhub_max_requests_per_second: float | None = None
    max_instances: int = 5
    observability: Observability = Observability("dmhub-adapter-sender", "DmhubAdapter", False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SenderSettings:
        """Read and check the variables; raises :class:`SettingsError` naming the first bad one."""
        env = _environ(environ)
        return cls(
            idempotency_table=env.required("IDEMPOTENCY_TABLE"),
            dead_letter_queue_url=env.required("DEAD_LETTER_QUEUE_URL"),
            dmhub_base_url=env.url("DMHUB_BASE_URL", DEFAULT_DMHUB_BASE_URL),
            secrets_prefix=env.optional("SECRETS_PREFIX", DEFAULT_SECRETS_PREFIX) or DEFAULT_SECRETS_PREFIX,
            dmhub_connect_timeout=env.number("DMHUB_CONNECT_TIMEOUT", 2.0, low=0.1, high=60),
            dmhub_read_timeout=env.number("DMHUB_READ_TIMEOUT", 5.0, low=0.1, high=900),
            concurrency=env.integer("SENDER_CONCURRENCY", 10, low=1, high=100),
            max_attempts=env.integer("SENDER_MAX_ATTEMPTS", 6, low=1, high=100),
            safety_margin_seconds=env.integer("SENDER_SAFETY_MARGIN_MS", 1000, low=0, high=60_000) / 1000,
            dmhub_api="v2" if env.choice("DMHUB_API", "v1", ("v1", "v2")) == "v2" else "v1",
            event_endpoint=(
                "collector"
                if env.choice("DMHUB_EVENT_ENDPOINT", "customerevents", ("customerevents", "collector")) == "collector"
                else "customerevents"
            ),
            attribute_budget=env.attribute_budget(),
            token_min_age_seconds=env.number(
                "DMHUB_TOKEN_MIN_AGE", DEFAULT_TOKEN_MIN_AGE_SECONDS, low=0, high=86400
            ),
            dmhub_max_requests_per_second=(
                env.number("DMHUB_MAX_REQUESTS_PER_SECOND", 0.0, low=0.01, high=1e6)
                if env.optional("DMHUB_MAX_REQUESTS_PER_SECOND") is not None
                else None
            ),
            max_instances=env.integer("SENDER_MAX_INSTANCES", 5, low=1, high=1000),
            observability=Observability.read(env, "dmhub-adapter-sender"),
        )

    @property
    def dmhub_rate_per_instance(self) -> float | None:
        """DM Hub requests per second this instance may start (None: no cap)."""
        if self.dmhub_max_requests_per_second is None:
            return None
        return self.dmhub_max_requests_per_second / self.max_instances

    @property
    def dmhub_secret_name(self) -> str:
        """``{SECRETS_PREFIX}/dmhub``: the DM Hub app credentials."""
        return f"{self.secrets_prefix}/dmhub"


@record(frozen=True)
class Settings:
    """The stack's environment as the command line sees it: every resource optional.

    Code that needs a resource calls :meth:`require`, which names the missing variable.
    """

    idempotency_table: str | None = None
    event_queue_url: str | None = None
    unmapped_queue_url: str | None = None
    dead_letter_queue_url: str | None = None
    dmhub_base_url: str = DEFAULT_DMHUB_BASE_URL
    secrets_prefix: str = DEFAULT_SECRETS_PREFIX
    mappings_dir: str | None = None
    aws_endpoint_url: str | None = None
    dedup_ttl_days: int = 7
    claim_lease_seconds: int = 30
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    attribute_budget: AttributeBudget = SEED_ATTRIBUTE_BUDGET
    dmhub_api: DmhubApi = "v1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the variables that are set; malformed numbers raise :class:`SettingsError`."""
        env = _environ(environ)
        return cls(
            idempotency_table=env.optional("IDEMPOTENCY_TABLE"),
            event_queue_url=env.optional("EVENT_QUEUE_URL"),
            unmapped_queue_url=env.optional("UNMAPPED_QUEUE_URL"),
            dead_letter_queue_url=env.optional("DEAD_LETTER_QUEUE_URL"),
            dmhub_base_url=(env.optional("DMHUB_BASE_URL") or DEFAULT_DMHUB_BASE_URL).rstrip("/"),
            secrets_prefix=env.optional("SECRETS_PREFIX") or DEFAULT_SECRETS_PREFIX,
            mappings_dir=env.optional("MAPPINGS_DIR"),
            aws_endpoint_url=env.optional("AWS_ENDPOINT_URL"),
            dedup_ttl_days=env.integer("DEDUP_TTL_DAYS", 7),
            claim_lease_seconds=env.integer("CLAIM_LEASE_SECONDS", 30),
            max_body_bytes=env.integer("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            attribute_budget=env.attribute_budget(),
            dmhub_api="v2" if env.choice("DMHUB_API", "v1", ("v1", "v2")) == "v2" else "v1",
        )

    def require(self, attribute: str) -> str:
        """Return a resource setting or fail with the environment variable that is missing."""
        value = getattr(self, attribute)
        if not value:
            raise RuntimeError(f"environment variable {attribute.upper()} is not set")
        return str(value)

    def secret_name(self, *parts: str) -> str:
        """``{SECRETS_PREFIX}/part/part`` — the brief's secret layout."""
        return "/".join((self.secrets_prefix, *parts))
