"""Shared helpers of the benchmarks: timing, the local AWS and DM Hub stand-ins, output."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
LAYER_SOURCE = ROOT / "layers" / "shared"

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_SERVICE_NAME": "dmhub-adapter-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "DmhubAdapterBench",
}


def fake_aws_environment() -> None:
    """Fake credentials before boto3 is used, so nothing here can reach real AWS."""
    os.environ.update(FAKE_AWS)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalAws:
    endpoint: str
    resources: Any


@contextmanager
def local_aws(**stack_options: Any) -> Iterator[LocalAws]:
    """A moto server on 127.0.0.1 with the stack's resources; the functions' environment set."""
    import boto3

    from dmhub_adapter import aws as aws_clients
    from dmhub_adapter_tools.local.moto import MotoServer
    from dmhub_adapter_tools.local.resources import create_stack

    fake_aws_environment()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto runs in its own process, as DynamoDB and SQS do: in-process it would compete with
    # the code under measurement for the GIL.
    server = MotoServer().start()
    endpoint = server.url
    saved = dict(os.environ)
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).read()
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        aws_clients.reset_clients()
        resources = create_stack(boto3.session.Session(), **stack_options)
        os.environ.update(resources.environment())
        yield LocalAws(endpoint, resources)
    finally:
        aws_clients.reset_clients()
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def ratio_line(name: str, value: str, ratio: float, target: str, met: bool) -> str:
    return f"  {name:<58} {value:>22}   ratio {ratio:6.2f}  target {target:<7} {'MET' if met else 'NOT MET'}"


def out(line: str = "") -> None:
    print(line, flush=True)
    sys.stdout.flush()


class RemoteEmulatorState:
    """The emulator's state read over its control API (``/_emulator/state``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _snapshot(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/_emulator/state", timeout=10) as response:
            return dict(json.loads(response.read()))

    def counters(self) -> dict[str, Any]:
        return dict(self._snapshot()["counters"])

    def rate(self) -> dict[str, Any] | None:
        """Requests per second and the busiest one-second window (``--count-per-second``)."""
        found = self._snapshot()["rate"]
        return None if found is None else dict(found)

    def events(self) -> list[dict[str, Any]]:
        return list(self._snapshot()["events"])

    def identities(self) -> list[dict[str, Any]]:
        return list(self._snapshot()["identities"])


class RemoteEmulator:
    """``dmhub-adapter emulator`` in a child process: DM Hub is a remote service, and an
    in-process emulator would share the GIL with the sender being measured."""

    app_id = "demo-app"
    secret = "demo-secret"

    def __init__(self, latency: float = 0.0, *, count_per_second: bool = False) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.state = RemoteEmulatorState(self.base_url)
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from dmhub_adapter_tools.cli import main; sys.exit(main())",
             "emulator", "--port", str(self.port), "--latency", str(latency),
             "--app-id", self.app_id, "--secret", self.secret,
             *(["--count-per-second"] if count_per_second else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.state.counters()
                break
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError("the DM Hub emulator did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> RemoteEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
