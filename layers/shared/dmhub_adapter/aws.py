"""boto3 clients, created once per container and reused (client creation is the costly part
of a cold start). ``AWS_ENDPOINT_URL`` is honoured by boto3 itself, which is how the local
stack points everything at moto_server.

All clients come from one ``Session``: each new session loads and parses botocore's
endpoint, partition and credential-provider data again, which cost about 70 ms for the
three clients of the ingest function. A session is not safe to share between threads while
it creates clients, hence the lock; the clients it makes are."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

_clients: dict[str, Any] = {}
_session: Any = None
_lock = threading.Lock()


def client(service: str) -> Any:
    """The container's shared boto3 client for ``service`` (untyped; prefer the typed helpers)."""
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


def dynamodb() -> DynamoDBClient:
    """The shared DynamoDB client (idempotency table: claims, token, identity cache)."""
    found: DynamoDBClient = client("dynamodb")
    return found


def sqs() -> SQSClient:
    """The shared SQS client (EventQueue, UnmappedQueue, DeadLetterQueue)."""
    found: SQSClient = client("sqs")
    return found


def secretsmanager() -> SecretsManagerClient:
    """The shared Secrets Manager client (account secrets, DM Hub credentials)."""
    found: SecretsManagerClient = client("secretsmanager")
    return found


def s3() -> S3Client:
    """The shared S3 client (unmapped payloads stored by reference)."""
    found: S3Client = client("s3")
    return found
