"""Errors a webhook request can end in, each with the HTTP status the platform sees."""

from __future__ import annotations


class WebhookError(Exception):
    """A request the adapter refuses; ``status`` and ``code`` go into the JSON error body."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, str]:
        """The JSON body of the refusal: a stable ``error`` code for programs and a message for people."""
        return {"error": self.code, "message": self.message}


class BadRequest(WebhookError):
    """The request is malformed (empty or unparsable body, bad charset, too deep); retrying will not
    help."""

    status = 400
    code = "bad_request"


class Unauthorized(WebhookError):
    """Missing or wrong signature, wrong app key or appid, stale timestamp."""

    status = 401
    code = "unauthorized"


class Forbidden(WebhookError):
    """Authentic but not allowed (e.g. plaintext mode refused for this account)."""

    status = 403
    code = "forbidden"


class NotFound(WebhookError):
    """No such source or account. The answer is one fixed text whatever was asked: echoing the
    path would reflect caller input (up to the URL's length) and tell sources from accounts.
    The specific reason stays in ``detail`` for the log."""

    status = 404
    code = "not_found"
    PUBLIC_MESSAGE = "no such webhook; use /webhooks/{source}/{account}"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(self.PUBLIC_MESSAGE, code=code)
        self.detail = message[:200]


class MethodNotAllowed(WebhookError):
    """Neither GET (a handshake) nor POST (a push)."""

    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(WebhookError):
    """The body is over the source's own cap (its adapter's or mapping's ``maxBodyBytes``)."""

    status = 413
    code = "payload_too_large"


class Unavailable(WebhookError):
    """A dependency failed; the platform should retry (its retry then succeeds)."""

    status = 503
    code = "unavailable"
