"""Shared fixtures. Fake AWS credentials are set before anything imports boto3, so no test
can reach real AWS; integration tests talk to moto_server over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="eu-west-1",
    POWERTOOLS_METRICS_NAMESPACE="DmhubAdapterTest",
    POWERTOOLS_SERVICE_NAME="dmhub-adapter-test",
    POWERTOOLS_TRACE_DISABLED="1",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"


def emf(output: str) -> list[dict[str, Any]]:
    """The JSON objects among printed lines: embedded-metric blobs (and JSON log lines)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on 127.0.0.1 over real HTTP, shared by the session."""
    from moto.server import ThreadedMotoServer

    from dmhub_adapter_tools.local.moto import serialize_dynamodb_writes

    serialize_dynamodb_writes()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Reset moto, point boto3 at it, create the stack's resources; yields StackResources
    (``.table``, ``.event_queue_url`` …) with the functions' env vars already set."""
    import urllib.request

    import boto3

    from dmhub_adapter import aws as aws_clients
    from dmhub_adapter_tools.local.resources import create_stack

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    aws_clients.reset_clients()
    stack = create_stack(boto3.session.Session(), max_receive_count=3, visibility_timeout=2)
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    yield stack
    aws_clients.reset_clients()


@pytest.fixture
def fault() -> Iterator[Callable[[Any, str, Any], Any]]:
    """Inject a fault: patch ``target.name`` with ``value`` until the returned patcher's
    ``.stop()`` (the repair) or the end of the test."""
    started: list[Any] = []

    def start(target: Any, name: str, value: Any) -> Any:
        patcher = mock.patch.object(target, name, value)
        patcher.start()
        started.append(patcher)
        return patcher

    yield start
    for patcher in reversed(started):
        with contextlib.suppress(RuntimeError):  # already repaired by the test
            patcher.stop()
