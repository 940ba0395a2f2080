"""Small things of the command line (issue 16, item 7), through the real CLI against the stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dmhub_adapter_tools.local.accounts import load_accounts
from dmhub_adapter_tools.local.samples import build_sample
from tests.e2e.conftest import RunningStack, dev_command, wait_for

pytestmark = pytest.mark.e2e

WECHAT = load_accounts().secret("wechat", "demo") or {}
#: a shell with nothing of a stack: no region, no credentials, no variables
BARE = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}


def cli(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dmhub-adapter")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "dmhub_adapter_tools.cli", *args]


def stack_env(stack: RunningStack) -> dict[str, str]:
    return {**BARE, **{k: str(v) for k, v in stack.info["environment"].items()}}


def test_print_env_names_the_port(stack: RunningStack) -> None:
    port = stack.gateway.rsplit(":", 1)[1]
    result = subprocess.run(dev_command("--print-env", "--port", port), capture_output=True, text=True,
                            timeout=30, check=False)
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert exports["DMHUB_ADAPTER_PORT"] == port
    assert "MAPPINGS_DIR" not in exports  # the stack runs the packaged mappings


def test_events_query_shows_the_newest_and_says_how_many_it_cut(stack: RunningStack) -> None:
    for n in range(3):
        sample = build_sample("wechat-follow", WECHAT, openid=f"oQueryOrder{n}" + "q" * 16)
        assert httpx.post(sample.url(stack.gateway), content=sample.body, headers=sample.headers,
                          timeout=30).status_code == 200
    wait_for(lambda: sum("oQueryOrder" in e["externalId"] for e in stack.emulator_state()["events"]) == 3,
             what="three events")
    total = len(stack.emulator_state()["events"])

    result = subprocess.run(cli("events", "query", "--max", "2"), capture_output=True, text=True,
                            env=stack_env(stack), timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)
    assert len(events) == 2 and events[0]["id"] > events[1]["id"]
    assert events[0]["id"] == max(e["id"] for e in stack.emulator_state()["events"])  # the newest first
    assert f"showing 2 of {total} event(s), newest first (--max N for more)" in result.stderr


def test_a_closed_pipe_is_no_traceback(stack: RunningStack) -> None:
    result = subprocess.run(" ".join([*cli("events", "query", "--max", "1000"), "| head -c 10"]), shell=True,
                            capture_output=True, text=True, env=stack_env(stack), timeout=60, check=False)
    assert result.returncode == 0
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


@pytest.mark.parametrize("args", [("events", "query"), ("replay", "dlq"), ("trace", "wechat", "demo", "x"),
                                  ("replay", "unmapped", "--dry-run"), ("status",)])
def test_without_a_stack_environment_commands_say_which_command_sets_it(args: tuple[str, ...]) -> None:
    result = subprocess.run(cli(*args), capture_output=True, text=True, env=BARE, timeout=60, check=False)
    assert result.returncode != 0
    assert 'eval "$(dmhub-adapter dev --print-env)"' in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_status_shows_depths_ages_claims_and_the_token(stack: RunningStack) -> None:
    stack.control("fail-next", {"count": 1, "status": 400, "endpoint": "events.create",
                                "body": {"code": 400, "message": "no such event type"}})
    sample = build_sample("wechat-follow", WECHAT, openid="oStatusDlq" + "s" * 18)
    httpx.post(sample.url(stack.gateway), content=sample.body, headers=sample.headers, timeout=30)

    def report() -> dict[str, object] | None:
        result = subprocess.run(cli("status", "--json"), capture_output=True, text=True, env=stack_env(stack),
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        dlq = next(q for q in data["queues"] if q["queue"] == "DeadLetterQueue")
        return data if dlq["waiting"] >= 1 else None

    data = wait_for(report, 20, what="the dead-lettered event in status")
    queues = {q["queue"]: q for q in data["queues"]}  # type: ignore[attr-defined]
    assert set(queues) == {"EventQueue", "DeadLetterQueue", "UnmappedQueue"}
    assert queues["DeadLetterQueue"]["oldestAgeSeconds"] is not None and queues["DeadLetterQueue"]["ageFrom"]
    assert data["claims"]["FAILED"] >= 1 and data["claims"]["DELIVERED"] >= 1  # type: ignore[index]
    assert data["dmhubToken"]["ageSeconds"] >= 0  # type: ignore[index]
    assert str(data["stack"]).startswith("local (")
    text = subprocess.run(cli("status"), capture_output=True, text=True, env=stack_env(stack), timeout=60,
                          check=False).stdout
    assert "DeadLetterQueue" in text and "waiting" in text and "DM Hub token     fetched" in text
