"""The local stack as a separate process (``dmhub-adapter dev``), reached only over its sockets:
the gateway, the DM Hub emulator's HTTP API and moto_server's AWS API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.conftest import free_port

#: short timings so retries and redeliveries happen within a test's patience
DEV_FLAGS = ["--poll-wait", "1", "--visibility-timeout", "2", "--max-receive-count", "5"]


def dev_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dmhub-adapter")
    if script.exists():
        return [str(script), "dev", *args]
    return [sys.executable, "-m", "dmhub_adapter_tools.cli", "dev", *args]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes once its parent reaped it.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


#: the three ways to DM Hub the stack runs in: mode -> the sender's environment
MODES = {
    "v1-customerevents": {"DMHUB_API": "v1", "DMHUB_EVENT_ENDPOINT": "customerevents"},
    "v1-collector": {"DMHUB_API": "v1", "DMHUB_EVENT_ENDPOINT": "collector"},
    "v2": {"DMHUB_API": "v2", "DMHUB_EVENT_ENDPOINT": "customerevents"},
}
#: the emulator endpoint that receives the events in each mode
EVENT_ENDPOINTS = {"v1-customerevents": "events.create", "v1-collector": "collector.batch", "v2": "v2.events.create"}


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    log_path: Path
    mode: str = "v1-customerevents"

    @property
    def event_endpoint(self) -> str:
        """The emulator endpoint events go to in this stack's mode."""
        return EVENT_ENDPOINTS[self.mode]

    def refuse_next_event(self, status: int, body: Any) -> None:
        """Have DM Hub refuse the next event call for good; in collector mode also the one-event
        call the sender then makes to isolate it."""
        endpoints = [self.event_endpoint] + (["collector.push"] if self.mode == "v1-collector" else [])
        for endpoint in endpoints:
            self.control("fail-next", {"count": 1, "status": status, "endpoint": endpoint, "body": body})

    @property
    def gateway(self) -> str:
        return str(self.info["gateway"])

    @property
    def dmhub(self) -> str:
        return str(self.info["dmhub"])

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- the emulator over HTTP --------------------------------------------------------------

    def emulator_state(self) -> dict[str, Any]:
        response = httpx.get(f"{self.dmhub}/_emulator/state", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def control(self, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.dmhub}/_emulator/{action}", json=body or {}, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    # -- moto over HTTP ----------------------------------------------------------------------

    def sqs(self) -> Any:
        return boto3.session.Session(region_name="eu-west-1").client("sqs", endpoint_url=self.info["moto"])

    def queue_depth(self, name: str) -> int:
        url = self.info["environment"][name]
        attributes = self.sqs().get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def drained(self) -> bool:
        return self.queue_depth("EVENT_QUEUE_URL") == 0

    # -- lifecycle ---------------------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            moto_pid = self.info.get("moto_pid")
            if moto_pid and pid_alive(int(moto_pid)):
                os.kill(int(moto_pid), signal.SIGKILL)  # never leave one behind, even when failing


def start_stack(tmp_path: Path, *extra: str, timeout: float = 60.0, env: dict[str, str] | None = None,
                mode: str = "v1-customerevents") -> RunningStack:
    ready = tmp_path / "ready.json"
    log_path = tmp_path / "dev.log"
    port = free_port()
    log_file = open(log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(
        dev_command("--port", str(port), "--ready-file", str(ready), *DEV_FLAGS, *extra),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**{k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "DMHUB_BASE_URL")},
             **MODES[mode], **(env or {})},
    )
    log_file.close()
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"dmhub-adapter dev exited with {process.returncode}:\n"
                                 f"{log_path.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            log = log_path.read_text(errors="replace")
            raise AssertionError(f"dmhub-adapter dev not ready in {timeout:.0f} s:\n{log}")
        time.sleep(0.05)
    return RunningStack(process=process, info=json.loads(ready.read_text(encoding="utf-8")), log_path=log_path,
                        mode=mode)


@pytest.fixture(scope="module", params=sorted(MODES))
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    """The whole local stack in one mode (v1 customerevents, v1 collector, v2) against the
    emulator with its current rules."""
    running = start_stack(tmp_path_factory.mktemp("stack"), mode=request.param)
    try:
        yield running
    finally:
        running.stop()
