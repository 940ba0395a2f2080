"""Runtime configuration read from the environment (names fixed by the design brief)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_DMHUB_BASE_URL = "https://api.convertlab.com"
DEFAULT_SECRETS_PREFIX = "dmhub-adapter"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Everything both functions read from their environment.

    Resource names are optional here so that commands which do not touch AWS (``map``,
    ``check-config``) work without them; code that needs one calls :meth:`require`.
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
    max_body_bytes: int = 256 * 1024
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            idempotency_table=_env("IDEMPOTENCY_TABLE"),
            event_queue_url=_env("EVENT_QUEUE_URL"),
            unmapped_queue_url=_env("UNMAPPED_QUEUE_URL"),
            dead_letter_queue_url=_env("DEAD_LETTER_QUEUE_URL"),
            dmhub_base_url=(_env("DMHUB_BASE_URL") or DEFAULT_DMHUB_BASE_URL).rstrip("/"),
            secrets_prefix=_env("SECRETS_PREFIX") or DEFAULT_SECRETS_PREFIX,
            mappings_dir=_env("MAPPINGS_DIR"),
            aws_endpoint_url=_env("AWS_ENDPOINT_URL"),
            dedup_ttl_days=_env_int("DEDUP_TTL_DAYS", 7),
            claim_lease_seconds=_env_int("CLAIM_LEASE_SECONDS", 30),
            max_body_bytes=_env_int("MAX_BODY_BYTES", 256 * 1024),
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
