"""boto3 clients, created once per container and reused (client creation is the costly part
of a cold start). ``AWS_ENDPOINT_URL`` is honoured by boto3 itself, which is how the local
stack points everything at moto_server.

All clients come from one ``Session``: each new session loads and parses botocore's
endpoint, partition and credential-provider data again, which cost about 70 ms for the
three clients of the ingest function. A session is not safe to share between threads while
it creates clients, hence the lock; the clients it makes are."""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_session: Any = None
_lock = threading.Lock()


def client(service: str) -> Any:
    cached = _clients.get(service)
    if cached is not None:
        return cached
    with _lock:
        cached = _clients.get(service)
        if cached is None:
            global _session
            from botocore.config import Config

            if _session is None:
                import boto3.session

                _session = boto3.session.Session()
            config = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=2,
                read_timeout=5,
                max_pool_connections=32,
            )
            cached = _session.client(service, config=config)
            _clients[service] = cached
    return cached


def reset_clients() -> None:
    """Forget cached clients and their session (tests that change the endpoint or credentials)."""
    global _session
    with _lock:
        _clients.clear()
        _session = None
