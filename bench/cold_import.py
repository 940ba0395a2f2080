"""P2: cold import of each handler in a fresh interpreter, against a boto3-only floor.

Each run is a new ``python`` process timing (perf_counter) the import of
``functions/<name>/app.py`` plus the creation of the boto3 clients the handler uses, through
the package's own client cache. ``+first request`` also imports what the first request pulls in
lazily (ingest: pipeline, sources, mapping engine, model; sender: the runtime it builds),
which is the real cold start. The floor is ``import boto3`` plus the same clients (sender:
and an ``httpx.Client``). Bytecode caches are warm on both sides.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import FAKE_AWS, FUNCTIONS, LAYER_SOURCE, ROOT

CLIENTS = {"ingest": ("dynamodb", "sqs", "secretsmanager"), "sender": ("dynamodb", "sqs")}

#: what the first request imports lazily, per handler
FIRST_REQUEST = {
    "ingest": (
        "dmhub_adapter.ingest.pipeline",
        "dmhub_adapter.ingest.handoff",
        "dmhub_adapter.ingest.secrets",
        "dmhub_adapter.apigw",
        "dmhub_adapter.ingest.metrics",
        "dmhub_adapter.store.claims",
        "dmhub_adapter.mapping.engine",
        "dmhub_adapter.model.customer_event",
        "dmhub_adapter.sources.registry",
        "dmhub_adapter.sources.wechat",
        "dmhub_adapter.sources.taobao",
    ),
    "sender": ("dmhub_adapter.sender.handler", "aws_lambda_powertools"),
}

_HANDLER = """
import sys, time
t0 = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.lambda_handler)
for name in {first!r}:
    __import__(name)
from dmhub_adapter import aws
for service in {clients!r}:
    aws.client(service)
print(time.perf_counter() - t0)
"""

_FLOOR = """
import time
t0 = time.perf_counter()
import boto3
session = boto3.session.Session()
for service in {clients!r}:
    session.client(service)
if {httpx!r}:
    import httpx
    httpx.Client()
print(time.perf_counter() - t0)
"""

ENV = {
    **FAKE_AWS,
    "IDEMPOTENCY_TABLE": "bench-idempotency",
    "EVENT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench-events",
    "UNMAPPED_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench-unmapped",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench-dlq",
    "DMHUB_BASE_URL": "http://127.0.0.1:9",
    "SECRETS_PREFIX": "bench",
}


@dataclass
class ColdResult:
    name: str
    seconds: float
    floor: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor


def _run(code: str, *, python: str, path: list[str], env: dict[str, str], isolated: bool = False) -> float:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    environment.update(env)
    environment["PYTHONPATH"] = os.pathsep.join(path)
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    args = [python, *(["-S"] if isolated else []), "-c", code]
    done = subprocess.run(args, capture_output=True, text=True, env=environment, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cold import run failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _median(code: str, runs: int, **kwargs: object) -> float:
    return statistics.median(_run(code, **kwargs) for _ in range(runs))  # type: ignore[arg-type]


def measure(runs: int = 7) -> list[ColdResult]:
    """Handlers from the checkout on this interpreter; tracing off and on (as deployed)."""
    results = []
    path = [str(LAYER_SOURCE)]
    for name, clients in CLIENTS.items():
        app = str(FUNCTIONS / name / "app.py")
        floor_code = _FLOOR.format(clients=clients, httpx=name == "sender")
        floor = _median(floor_code, runs, python=sys.executable, path=path, env=ENV)
        variants: list[tuple[str, tuple[str, ...], dict[str, str]]] = [
            ("import", (), ENV),
            ("import + first request", FIRST_REQUEST[name], ENV),
        ]
        if name == "ingest":
            traced = {k: v for k, v in ENV.items() if k != "POWERTOOLS_TRACE_DISABLED"}
            variants.append(("import, tracing on (as deployed)", (), traced))
        for label, first, env in variants:
            code = _HANDLER.format(path=app, first=first, clients=clients)
            seconds = _median(code, runs, python=sys.executable, path=path, env=env)
            results.append(ColdResult(f"{name}: {label}", seconds, floor))
    return results


def built_interpreter() -> str | None:
    """CPython 3.13 for the built layer (its bytecode is for 3.13), when pyenv has it."""
    env = {**os.environ, "PYENV_VERSION": os.environ.get("PYENV_VERSION", "3.13.0")}
    for candidate in ("python3.13",):
        try:
            done = subprocess.run([candidate, "-c", "import sys; print(sys.executable)"], capture_output=True,
                                  text=True, env=env, check=False, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def measure_built(runs: int = 7) -> list[ColdResult]:
    """The ``sam build`` output as Lambda loads it: ``python3.13 -S``, function dir, layer,
    then the runtime's SDK (``.aws-sam/runtime-sdk``, see scripts/check_build.py)."""
    build = ROOT / ".aws-sam" / "build"
    sdk = ROOT / ".aws-sam" / "runtime-sdk"
    layer = build / "SharedLayer" / "python"
    python = built_interpreter()
    if not layer.is_dir() or not sdk.is_dir() or python is None:
        return []
    results = []
    for name, clients in CLIENTS.items():
        function_dir = build / f"{name.capitalize()}Function"
        if not (function_dir / "app.py").is_file():
            continue
        path = [str(function_dir), str(layer), str(sdk)]
        floor = _median(_FLOOR.format(clients=clients, httpx=name == "sender"), runs, python=python,
                        path=[str(layer), str(sdk)], env=ENV, isolated=True)
        for label, first in (("import", ()), ("import + first request", FIRST_REQUEST[name])):
            code = _HANDLER.format(path=str(function_dir / "app.py"), first=first, clients=clients)
            seconds = _median(code, runs, python=python, path=path, env=ENV, isolated=True)
            results.append(ColdResult(f"{name} (built, 3.13): {label}", seconds, floor))
    return results


if __name__ == "__main__":
    print(json.dumps([r.__dict__ for r in measure(3)], indent=1))
    print(json.dumps([r.__dict__ for r in measure_built(3)], indent=1))
    print(Path.cwd())
