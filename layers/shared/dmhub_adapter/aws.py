"""boto3 clients, created once per container and reused (client creation is the costly part
of a cold start). ``AWS_ENDPOINT_URL`` is honoured by boto3 itself, which is how the local
stack points everything at moto_server."""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    cached = _clients.get(service)
    if cached is not None:
        return cached
    with _lock:
        cached = _clients.get(service)
        if cached is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=2,
                read_timeout=5,
                max_pool_connections=32,
            )
            cached = boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]
            _clients[service] = cached
    return cached


def reset_clients() -> None:
    """Forget cached clients (tests that change the endpoint or credentials)."""
    with _lock:
        _clients.clear()
