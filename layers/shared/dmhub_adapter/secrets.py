"""Every secret the runtime reads, from Secrets Manager: account secrets and DM Hub's app
credentials. This is the one module that calls Secrets Manager.

**Account secrets** (:class:`SecretStore`, the ingest): ``{SECRETS_PREFIX}/{source}/{account}``.

An account exists exactly when its secret does, so a source without signatures still needs one
(``{}`` will do). Outcomes, as the platform sees them:

- secret found, a JSON object          → the account's secret (cached ``max_age`` seconds);
- ``ResourceNotFoundException``        → 404 (unknown account), remembered for
  ``negative_ttl`` seconds so a scan of made-up account names cannot run up API calls;
- anything else (throttling, network, access denied, not JSON, not an object) → 503: the
  platform retries and the retry succeeds once the cause is gone. Never a 500.

Reads are one ``GetSecretValue`` on this package's shared boto3 client (so ``AWS_ENDPOINT_URL``
and the client config apply), cached here: Powertools Parameters did the same through a heavier
import (its providers pull in boto3's resource layer and s3transfer) that every cold start paid.

**DM Hub credentials** (:func:`load_credentials`, the sender and the tools):
``{SECRETS_PREFIX}/dmhub`` = ``{"appId", "secret"}``, cached per container for
``CREDENTIALS_MAX_AGE`` seconds so a rotated secret is picked up without a cold start.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dmhub_adapter.dmhub.errors import CredentialsError
from dmhub_adapter.errors import NotFound
from dmhub_adapter.ingest.errors import DependencyUnavailable
from dmhub_adapter.records import record

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger(__name__)

#: What an ``{account}`` path segment may be; anything else is unknown without a lookup.
ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_MAX_AGE = 300
DEFAULT_NEGATIVE_TTL = 30.0
_NEGATIVE_CACHE_MAX = 1024


def _error_code(exc: BaseException) -> str | None:
    """The AWS error code behind ``exc`` (a botocore ``ClientError``, or one chained to it)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        response = getattr(seen, "response", None)
        if isinstance(response, Mapping):
            code = (response.get("Error") or {}).get("Code")
            if code:
                return str(code)
        seen = seen.__cause__ or seen.__context__
    return None


class SecretStore:
    """Account secrets from Secrets Manager, ``{prefix}/{source}/{account}``, cached per
    container (``max_age`` seconds) and with missing names remembered briefly (``negative_ttl``), so
    a burst at an unknown account costs one lookup, not one per request.

    Example::

        store = SecretStore("dmhub-adapter")
        secret = store.account_secret("wechat", "brand-cn")  # dict, or NotFound
    """

    def __init__(
        self,
        prefix: str,
        *,
        client: Any | None = None,
        max_age: int = DEFAULT_MAX_AGE,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
        log: Any | None = None,
    ) -> None:
        self.prefix = prefix
        self.log = log or logger
        self.max_age = max_age
        self.negative_ttl = negative_ttl
        self._client = client
        self._clock = clock
        self._missing: dict[str, float] = {}
        self._found: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def name(self, source: str, account: str) -> str:
        """The secret name of an account: ``{prefix}/{source}/{account}``."""
        return f"{self.prefix}/{source}/{account}"

    def _get_client(self) -> Any:
        if self._client is None:
            from dmhub_adapter import aws

            self._client = aws.client("secretsmanager")
        return self._client

    def _cached(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._found.get(name)
            if found is None:
                return None
            if self._clock() - found[0] < self.max_age:
                return found[1]
            del self._found[name]
            return None

    def _remember(self, name: str, value: dict[str, Any]) -> None:
        with self._lock:
            if len(self._found) >= _NEGATIVE_CACHE_MAX:
                self._found.clear()
            self._found[name] = (self._clock(), value)

    def _known_missing(self, name: str) -> bool:
        with self._lock:
            until = self._missing.get(name)
            if until is None:
                return False
            if until > self._clock():
                return True
            del self._missing[name]
            return False

    def _remember_missing(self, name: str) -> None:
        with self._lock:
            if len(self._missing) >= _NEGATIVE_CACHE_MAX:
                self._missing.clear()
            self._missing[name] = self._clock() + self.negative_ttl

    def account_secret(self, source: str, account: str) -> dict[str, Any]:
        """The account's secret; raises :class:`NotFound` or :class:`DependencyUnavailable`."""
        if not ACCOUNT_NAME_RE.match(account):
            raise NotFound(f"unknown account {account!r} for source {source!r}")
        name = self.name(source, account)
        if self._known_missing(name):
            raise NotFound(f"unknown account {account!r} for source {source!r}")
        cached = self._cached(name)
        if cached is not None:
            return cached
        try:
            text = self._get_client().get_secret_value(SecretId=name).get("SecretString")
        except Exception as exc:  # botocore ClientError, or the network / credentials failing
            code = _error_code(exc)
            if code == "ResourceNotFoundException":
                self._remember_missing(name)
                raise NotFound(f"unknown account {account!r} for source {source!r}") from None
            self.log.error("secret %s could not be read: %s", name, code or type(exc).__name__)
            raise DependencyUnavailable("secret_unavailable") from None
        try:
            value = json.loads(text or "")
        except ValueError:
            self.log.error("secret %s is not valid JSON", name)
            raise DependencyUnavailable("secret_invalid") from None
        if not isinstance(value, dict):
            self.log.error("secret %s is not a JSON object", name)
            raise DependencyUnavailable("secret_invalid")
        self._remember(name, value)
        return value


@record(frozen=True)
class DmhubCredentials:
    """A DM Hub app's id and secret; the secret never shows in a repr or a log."""

    app_id: str
    secret: str

    def __repr__(self) -> str:
        return f"DmhubCredentials(app_id={self.app_id!r}, secret='***')"


# -- DM Hub credentials --------------------------------------------------------------------------

_credentials_cache: dict[str, tuple[float, DmhubCredentials]] = {}
_credentials_lock = threading.Lock()
CREDENTIALS_MAX_AGE = 300.0


def credentials_from_secret(text: str, name: str) -> DmhubCredentials:
    """Parse the DM Hub secret's JSON; :class:`CredentialsError` names what is wrong."""
    try:
        data = json.loads(text)
    except ValueError:
        raise CredentialsError(f"secret {name} is not JSON") from None
    if not isinstance(data, dict) or not data.get("appId") or not data.get("secret"):
        raise CredentialsError(f'secret {name} must be {{"appId": "...", "secret": "..."}}')
    return DmhubCredentials(app_id=str(data["appId"]), secret=str(data["secret"]))


def load_credentials(
    secret_name: str,
    *,
    client: SecretsManagerClient | None = None,
    max_age: float = CREDENTIALS_MAX_AGE,
) -> DmhubCredentials:
    """DM Hub app credentials from Secrets Manager (cached ``max_age`` seconds per container)."""
    now = time.monotonic()
    with _credentials_lock:
        cached = _credentials_cache.get(secret_name)
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
    if client is None:
        from dmhub_adapter import aws

        client = aws.secretsmanager()
    try:
        response = client.get_secret_value(SecretId=secret_name)
    except client.exceptions.ResourceNotFoundException:
        raise CredentialsError(f"secret {secret_name} does not exist") from None
    credentials = credentials_from_secret(response.get("SecretString") or "", secret_name)
    with _credentials_lock:
        _credentials_cache[secret_name] = (now, credentials)
    return credentials


def clear_credentials_cache() -> None:
    """Forget cached credentials (tests; a rotation that must apply at once)."""
    with _credentials_lock:
        _credentials_cache.clear()
