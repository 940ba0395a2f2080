"""P2: cold import of each handler in a fresh interpreter, against a boto3-only floor.

Each run is a new ``python`` process timing (perf_counter) the import of
``functions/<name>/app.py`` plus the creation of the clients the handler uses, through the
package's own code (boto3 clients from its client cache; the sender's DM Hub client, which
holds an ``httpx.Client``). ``+first request`` also imports what the first request pulls in
lazily (ingest: pipeline, sources, mapping engine, model, the secrets provider; sender: the
runtime it builds, Powertools logging and metrics, its batch processing) and does the first
request's own work without its network calls (ingest: load the WeChat mapping, verify, decrypt
and map a signed follow, serialise the queued event; sender: parse and validate that event and
build DM Hub's request body), which is the real cold start. The floor is ``import boto3`` plus
the same boto3 clients (sender: and an ``httpx.Client``).

Fair on both sides:

- bytecode is warm for everything, as in the built layer: the runs share a private
  ``PYTHONPYCACHEPREFIX`` filled by one unmeasured run of each program (the checkout's layer
  has no ``__pycache__`` when ``PYTHONDONTWRITEBYTECODE`` is set, and compiling it in every
  run is a cost Lambda never pays);
- the floor and the handler's programs take turns, run after run, so a change of machine
  load between them does not turn into a ratio;
- ``LAMBDA_TASK_ROOT`` is set as Lambda sets it: with it the X-Ray SDK uses its local
  sampler and Powertools really patches; without it the SDK builds a centralised-sampling
  client (a second botocore session, about 100 ms that Lambda never pays) while Powertools
  turns tracing off and patches nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import FAKE_AWS, FUNCTIONS, LAYER_SOURCE, ROOT

CLIENTS = {"ingest": ("dynamodb", "sqs", "secretsmanager"), "sender": ("dynamodb", "sqs")}

#: what the first request imports lazily, per handler (the ingest's is a WeChat follow: the
#: registry imports only the adapter a request's source names, so no other source's package)
FIRST_REQUEST = {
    "ingest": (
        "dmhub_adapter.ingest.pipeline",
        "dmhub_adapter.ingest.handoff",
        "dmhub_adapter.secrets",
        "dmhub_adapter.apigw",
        "dmhub_adapter.ingest.metrics",
        "dmhub_adapter.store.claims",
        "dmhub_adapter.mapping.engine",
        "dmhub_adapter.model.wire",
        "dmhub_adapter.sources.registry",
        "dmhub_adapter.sources.wechat",
    ),
    "sender": (
        "dmhub_adapter.sender.bootstrap",
        "aws_lambda_powertools.logging",
        "aws_lambda_powertools.metrics",
        "dmhub_adapter.sender.core",
        "dmhub_adapter.sender.batch",
    ),
}

ENV = {
    **FAKE_AWS,
    "IDEMPOTENCY_TABLE": "bench-idempotency",
    "EVENT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench-events",
    "UNMAPPED_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench-unmapped",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/bench-dlq",
    "DMHUB_BASE_URL": "http://127.0.0.1:9",
    "SECRETS_PREFIX": "bench",
}

#: the HTTP client each handler builds besides its boto3 clients (the floor's ``httpx.Client``)
HTTP_CLIENT = {
    "ingest": "",
    "sender": f"from dmhub_adapter.dmhub.client import DmhubClient\nDmhubClient({ENV['DMHUB_BASE_URL']!r})",
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
{http}
{work}
print(time.perf_counter() - t0)
"""

#: the first request's own work, without its AWS and DM Hub calls: the ingest loads the source's
#: mapping, verifies, decrypts and maps a signed WeChat follow and serialises the queued event as
#: the queue client does;
#: the sender parses and validates that queued event and builds DM Hub's request body
_INGEST_WORK = """
import json
from dmhub_adapter.ingest.pipeline import queued_event
from dmhub_adapter.mapping.engine import map_payload
from dmhub_adapter.model.rules import SEED_ATTRIBUTE_BUDGET
from dmhub_adapter.sources.base import Account
from dmhub_adapter.sources.registry import source_for
from dmhub_adapter.webhook import WebhookRequest
source = source_for("wechat")
request = WebhookRequest(method="POST", source="wechat", account="demo", body={body!r}, query={query!r},
                         raw_query={raw_query!r}, headers={{}}, received_at={now!r}, request_id="cold")
inbound = source.receive(request, Account("wechat", "demo", source.mapping, {secret!r}))
meta = {{"source": "wechat", "account": "demo", "received_at": int(request.received_at)}}
queued = [json.dumps(queued_event("wechat", request, mapped, SEED_ATTRIBUTE_BUDGET).to_message(),
                     ensure_ascii=False, separators=(",", ":"))
          for result in map_payload(source.mapping, inbound.messages, meta) for mapped in result.events]
assert len(queued) == 1
"""

_SENDER_WORK = """
from dmhub_adapter.sender.core import parse_body
_, event = parse_body({queued!r})
assert event.event.to_request()["event"]
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


@dataclass
class ColdResult:
    name: str
    seconds: float
    floor: float

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor


@dataclass
class _Program:
    label: str
    code: str
    path: list[str]
    env: dict[str, str]


def _run(program: _Program, *, python: str, isolated: bool, pycache: str | None, write: bool = False) -> float:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_"))}
    environment.pop("PYTHONPYCACHEPREFIX", None)
    environment.update(program.env)
    environment["PYTHONPATH"] = os.pathsep.join(program.path)
    if write:
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    if pycache is not None:
        environment["PYTHONPYCACHEPREFIX"] = pycache
    args = [python, *(["-S"] if isolated else []), "-c", program.code]
    done = subprocess.run(args, capture_output=True, text=True, env=environment, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cold import run failed ({program.label}):\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _medians(programs: list[_Program], runs: int, *, python: str, isolated: bool = False,
             pycache: str | None = None) -> dict[str, float]:
    """Median seconds per program; the programs take turns so that load drift hits them alike."""
    if pycache is not None:
        for program in programs:
            _run(program, python=python, isolated=isolated, pycache=pycache, write=True)
    times: dict[str, list[float]] = {program.label: [] for program in programs}
    for _ in range(runs):
        for program in programs:
            times[program.label].append(_run(program, python=python, isolated=isolated, pycache=pycache))
    return {label: statistics.median(values) for label, values in times.items()}


def _first_work() -> dict[str, str]:
    """Each handler's first-request work as code, around one signed WeChat follow built here
    (the tools package that signs it is not on a built layer's path)."""
    from bench.ingest_cost import WECHAT_SECRET, cases

    wechat = cases()[0]
    request = wechat.request
    queued = json.dumps(wechat.library()[0].to_message(), ensure_ascii=False, separators=(",", ":"))
    ingest = _INGEST_WORK.format(body=request.body, query=request.query, raw_query=request.raw_query,
                                 now=request.received_at, secret=WECHAT_SECRET)
    return {"ingest": ingest, "sender": _SENDER_WORK.format(queued=queued)}


def _handler_code(name: str, app: Path, first: tuple[str, ...]) -> str:
    work = _first_work()[name] if first else ""
    return _HANDLER.format(path=str(app), first=first, clients=CLIENTS[name], http=HTTP_CLIENT[name], work=work)


def _floor_code(name: str) -> str:
    return _FLOOR.format(clients=CLIENTS[name], httpx=name == "sender")


def measure(runs: int = 7) -> list[ColdResult]:
    """Handlers from the checkout on this interpreter; tracing off and on (as deployed)."""
    results = []
    path = [str(LAYER_SOURCE)]
    with tempfile.TemporaryDirectory(prefix="dmhub-adapter-pycache-") as pycache:
        for name in CLIENTS:
            app = FUNCTIONS / name / "app.py"
            lambda_env = {**ENV, "LAMBDA_TASK_ROOT": str(app.parent)}
            programs = [
                _Program("floor", _floor_code(name), path, ENV),
                _Program("import", _handler_code(name, app, ()), path, lambda_env),
                _Program("import + first request", _handler_code(name, app, FIRST_REQUEST[name]), path, lambda_env),
            ]
            if name == "ingest":
                traced = {k: v for k, v in lambda_env.items() if k != "POWERTOOLS_TRACE_DISABLED"}
                programs.append(_Program("import, tracing on (as deployed)", programs[1].code, path, traced))
            medians = _medians(programs, runs, python=sys.executable, pycache=pycache)
            floor = medians.pop("floor")
            results += [ColdResult(f"{name}: {label}", seconds, floor) for label, seconds in medians.items()]
    return results


_PYDANTIC = """
import time
t0 = time.perf_counter()
from pydantic import BaseModel
class First(BaseModel):
    value: int
First(value=1)
print(time.perf_counter() - t0)
"""

_PYDANTIC_AND_MODELS = """
import time
t0 = time.perf_counter()
from pydantic import BaseModel
class First(BaseModel):
    value: int
First(value=1)
t1 = time.perf_counter()
import dmhub_adapter.mapping.config
import dmhub_adapter.model.customer_event
print(time.perf_counter() - t1)
"""


@dataclass
class Obstacle:
    """What pydantic costs a cold start, measured beside the floor in fresh interpreters."""

    #: ``from pydantic import BaseModel`` and a first one-field model, seconds
    pydantic: float
    #: building the runtime's own pydantic classes (event model, mapping files) after that, seconds
    models: float
    #: ``import boto3`` and the ingest's clients, seconds
    floor: float


def measure_obstacle(runs: int = 7) -> Obstacle:
    """The medians of pydantic's own first use, of our model classes after it, and of the
    ingest's floor, taking turns like :func:`measure`."""
    path = [str(LAYER_SOURCE)]
    programs = [
        _Program("floor", _floor_code("ingest"), path, ENV),
        _Program("pydantic", _PYDANTIC, path, ENV),
        _Program("models", _PYDANTIC_AND_MODELS, path, ENV),
    ]
    with tempfile.TemporaryDirectory(prefix="dmhub-adapter-pycache-") as pycache:
        medians = _medians(programs, runs, python=sys.executable, pycache=pycache)
    return Obstacle(pydantic=medians["pydantic"], models=medians["models"], floor=medians["floor"])


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
    then the runtime's SDK (``.aws-sam/runtime-sdk``, see scripts/check_build.py), with the
    bytecode the build ships."""
    build = ROOT / ".aws-sam" / "build"
    sdk = ROOT / ".aws-sam" / "runtime-sdk"
    layer = build / "SharedLayer" / "python"
    python = built_interpreter()
    if not layer.is_dir() or not sdk.is_dir() or python is None:
        return []
    results = []
    for name in CLIENTS:
        function_dir = build / f"{name.capitalize()}Function"
        app = function_dir / "app.py"
        if not app.is_file():
            continue
        path = [str(function_dir), str(layer), str(sdk)]
        lambda_env = {**ENV, "LAMBDA_TASK_ROOT": str(function_dir)}
        programs = [
            _Program("floor", _floor_code(name), [str(layer), str(sdk)], ENV),
            _Program("import", _handler_code(name, app, ()), path, lambda_env),
            _Program("import + first request", _handler_code(name, app, FIRST_REQUEST[name]), path, lambda_env),
        ]
        medians = _medians(programs, runs, python=python, isolated=True)
        floor = medians.pop("floor")
        results += [ColdResult(f"{name} (built, 3.13): {label}", seconds, floor) for label, seconds in medians.items()]
    return results


def _importtime_program(name: str) -> _Program:
    app = FUNCTIONS / name / "app.py"
    env = {**ENV, "LAMBDA_TASK_ROOT": str(app.parent)}
    return _Program(name, _handler_code(name, app, FIRST_REQUEST[name]), [str(LAYER_SOURCE)], env)


def importtime_top(name: str, top: int = 10) -> list[tuple[str, float]]:
    """``-X importtime`` of the handler's import + first request (checkout layer, warm
    bytecode): the ``top`` top-level packages by the import time spent in their own modules
    (milliseconds, summed over each package's modules)."""
    program = _importtime_program(name)
    with tempfile.TemporaryDirectory(prefix="dmhub-adapter-pycache-") as pycache:
        _run(program, python=sys.executable, isolated=False, pycache=pycache, write=True)
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_"))}
        environment.update(program.env)
        environment.update(PYTHONPATH=os.pathsep.join(program.path), PYTHONDONTWRITEBYTECODE="1",
                           PYTHONPYCACHEPREFIX=pycache)
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", program.code], capture_output=True,
                              text=True, env=environment, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"importtime run failed ({name}):\n{done.stderr[-2000:]}")
    return aggregate_importtime(done.stderr, top)


def heavy_modules(name: str) -> list[str]:
    """The top-level packages among pydantic, pydantic_core and yaml that the handler's import +
    first request loads (checkout layer, fresh interpreter): none, when the cold path is as
    designed (the mapping from its compiled plan, events checked without pydantic)."""
    program = _importtime_program(name)
    code = program.code + (
        "\nimport sys\nprint('heavy:' + ','.join(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'pydantic', 'pydantic_core', 'yaml'})))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "LAMBDA_"))}
    environment.update(program.env)
    environment.update(PYTHONPATH=os.pathsep.join(program.path), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"heavy modules run failed ({name}):\n{done.stderr[-2000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("heavy:"))
    return [module for module in line.removeprefix("heavy:").split(",") if module]


def aggregate_importtime(stderr: str, top: int = 10) -> list[tuple[str, float]]:
    """Self time (ms) per top-level package from ``-X importtime`` output, largest first."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        self_us, _cumulative, module = parts
        try:
            self_ms = int(self_us) / 1000
        except ValueError:  # the header line
            continue
        package = module.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + self_ms
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top]


if __name__ == "__main__":
    print(json.dumps([r.__dict__ for r in measure(3)], indent=1))
    print(json.dumps([r.__dict__ for r in measure_built(3)], indent=1))
    print(Path.cwd())
