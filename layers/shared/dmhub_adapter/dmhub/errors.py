"""What a DM Hub call can end in, each error saying whether trying again may help.

DM Hub reports failures in three shapes, plus what the network does to a call:

====================================  ==================  =========
answer                                 error               retryable
====================================  ==================  =========
HTTP 200, top-level ``error_code``≠0   TokenError          yes (after a coordinated refresh)
HTTP 200, ``{"error": {...}}``         DmhubValidationError     no
HTTP 429                               RateLimited         yes (after ``Retry-After``)
HTTP 5xx, 408                          HttpError           yes
HTTP 4xx (other)                       HttpError           no
2xx whose body is not JSON             UnexpectedResponse  yes
connect/read failure, timeout          TransportError      yes
token endpoint refuses appid/secret    CredentialsError    yes (an outage of configuration,
                                                              not a fault of the event)
unknown identity, create not allowed   IdentityNotFound    no
====================================  ==================  =========
"""

from __future__ import annotations

from typing import Any


class DmhubError(Exception):
    """Base of every DM Hub failure; ``retryable`` tells the sender what to do with it."""

    retryable: bool = False
    kind: str = "dmhub_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def field_errors(self) -> list[dict[str, Any]]:
        """DM Hub's per-field complaints; empty for errors that are not about the event's fields."""
        return []

    def describe(self) -> str:
        """A one-line reason fit for logs, DLQ messages and claim items (never holds a token)."""
        return f"{self.kind}: {self.message}"


class TransportError(DmhubError):
    """The request did not complete: connection refused or reset, DNS, timeout, deadline."""

    retryable = True
    kind = "transport"


class TokenError(DmhubError):
    """DM Hub's security layer refused the access token (HTTP 200 with ``error_code``)."""

    retryable = True
    kind = "token"

    def __init__(self, message: str, *, error_code: int | str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class CredentialsError(DmhubError):
    """The token endpoint refused the app id or secret, or the credentials are missing.

    Retryable because the event itself is fine: once the secret is fixed a redelivery works.
    """

    retryable = True
    kind = "credentials"


class DmhubValidationError(DmhubError):
    """DM Hub refused the body (HTTP 200 with an ``error`` object): permanent."""

    retryable = False
    kind = "validation"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field_errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self._field_errors = list(field_errors or [])

    @property
    def field_errors(self) -> list[dict[str, Any]]:
        """A copy of the `fieldErrors` DM Hub returned, so callers cannot alter the error."""
        return list(self._field_errors)

    def describe(self) -> str:
        """One line naming each refused field and DM Hub's message, for the DLQ reason and logs."""
        fields = ", ".join(
            f"{error.get('fieldName') or error.get('field') or '?'}: {error.get('message', '')}"
            for error in self._field_errors
        )
        code = f" [{self.code}]" if self.code else ""
        return f"{self.kind}{code}: {self.message}" + (f" ({fields})" if fields else "")


class HttpError(DmhubError):
    """A plain HTTP error status. 5xx and 408 are retryable; other 4xx are permanent."""

    kind = "http"

    def __init__(self, status: int, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = (status >= 500 or status in (408, 429)) if retryable is None else retryable

    def describe(self) -> str:
        """One line with the error kind, the HTTP status and DM Hub's message."""
        return f"{self.kind} {self.status}: {self.message}"


class RateLimited(HttpError):
    """HTTP 429; ``retry_after`` is the server's ``Retry-After`` in seconds when given."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(429, message, retryable=True)
        self.retry_after = retry_after


class UnexpectedResponse(HttpError):
    """A 2xx whose body is not the JSON DM Hub answers with (a proxy page, a cut-off body)."""

    kind = "unexpected_response"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message, retryable=True)


class IdentityNotFound(DmhubError):
    """DM Hub does not know the identity and the source does not allow creating the customer."""

    retryable = False
    kind = "unknown_identity"
