"""Check a `sam build` output the way the Lambda python3.13 runtime will load it.

Run after `sam build` (``make check-build`` does both), with CPython 3.13:

    python3.13 scripts/check_build.py [--build-dir .aws-sam/build] [--runs 5]

For each handler it starts fresh ``python3.13 -S`` interpreters (no site-packages) whose
path is what Lambda gives: the function's code, then the layer's ``python/``, then the SDK
the runtime ships (boto3, installed once into ``.aws-sam/runtime-sdk``); bytecode writing
is off, as on Lambda's read-only file system. Each run imports the handler module and
checks ``lambda_handler`` is callable, timing the import (the median is printed). It also
checks the layer: every module has CPython 3.13 bytecode that does not depend on source
mtimes, native extensions are for cp313 x86_64, and nothing the runtime ships is duplicated.
Prints sizes, unzipped and zipped. Exit status 1 on any failed check.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = {"IngestFunction": "app", "SenderFunction": "app"}
LAYER = "SharedLayer"
# What the runtime ships and the layer must not carry (checked by top-level import name).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")
# Development and operator tooling, and the libraries only it uses: none of it belongs in the layer.
TOOLS_ONLY = ("dmhub_adapter_tools", "moto", "werkzeug", "flask", "starlette", "jinja2", "pytest", "hypothesis")
# The functions read these at import or first use; the values only need to be well-formed.
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "check-build",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    # Powertools and the X-Ray SDK treat the process as a Lambda only when this is set; without
    # it "tracing on" would build an X-Ray sampling client that Lambda never builds.
    "LAMBDA_TASK_ROOT": "/var/task",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "IDEMPOTENCY_TABLE": "check-build-idempotency",
    "EVENT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/check-build-events",
    "UNMAPPED_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/check-build-unmapped",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/check-build-dlq",
    "DMHUB_BASE_URL": "https://api.convertlab.com",
    "SECRETS_PREFIX": "dmhub-adapter",
    "DEDUP_TTL_DAYS": "7",
    "POWERTOOLS_SERVICE_NAME": "check-build",
    "POWERTOOLS_METRICS_NAMESPACE": "DmhubAdapter",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "false",
    "PYTHONDONTWRITEBYTECODE": "1",
}
PROBE = """
import sys, time
start = time.perf_counter()
import {module} as handler_module
elapsed = time.perf_counter() - start
assert {attribute!r} is None or callable(getattr(handler_module, {attribute!r}, None)), "no callable {attribute}"
bad = sorted(
    name for name, mod in sys.modules.items()
    if getattr(mod, "__file__", None)
    and not any(mod.__file__.startswith(p) for p in [*{allowed!r}, sys.base_prefix, sys.base_exec_prefix])
)
print(repr((elapsed, len(sys.modules), bad[:5])))
"""


# Every library module a function may import lazily: the layer holds the runtime alone, so
# each of them must import with nothing but the layer and the runtime's SDK.
LIBRARY_PROBE = """
import importlib, pkgutil, sys
import dmhub_adapter
failed = []
for info in pkgutil.walk_packages(dmhub_adapter.__path__, "dmhub_adapter.", onerror=lambda name: None):
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print(repr(failed))
"""


class CheckFailed(Exception):
    pass


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _zipped_size(path: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(path))
    return buffer.tell()


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def ensure_runtime_sdk(build_dir: Path, python: str) -> Path:
    """boto3 as the runtime ships it, kept apart from the layer (the layer must not need to carry it)."""
    # Beside the build dir, not in it: `sam build` starts that afresh.
    target = build_dir.parent / "runtime-sdk"
    if not (target / "boto3").is_dir():
        pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--target", str(target), "boto3"],
            check=True,
            env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
        )
    return target


def _imported_modules(text: str) -> set[str]:
    """Every module a source file imports, at any depth (lazy imports included)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def check_layer(layer: Path) -> list[str]:
    """Problems with the built layer's contents (empty when it is as intended)."""
    problems: list[str] = []
    python_dir = layer / "python"
    if not python_dir.is_dir():
        return [f"{python_dir} is missing"]
    present = {p.name.split(".")[0] for p in python_dir.iterdir()}
    for name in RUNTIME_PROVIDED:
        if name in present:
            problems.append(f"layer carries {name}, which the runtime ships")
    if "dmhub_adapter" not in present:
        problems.append("layer lacks dmhub_adapter")
    for name in TOOLS_ONLY:
        if name in present:
            problems.append(f"layer carries {name}, which is development tooling")
    for source in sorted((python_dir / "dmhub_adapter").rglob("*.py")):
        imported = _imported_modules(source.read_text(encoding="utf-8", errors="replace"))
        if any(name.split(".")[0] in TOOLS_ONLY for name in imported):
            problems.append(f"layer module {source.relative_to(python_dir)} imports development tooling")
    sources = list(python_dir.rglob("*.py"))
    missing = []
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not compiled.is_file():
            missing.append(source)
            continue
        # PEP 552 flags: bit 0 = hash-based, bit 1 = check_source. Timestamp-based .pyc would be
        # judged stale after packaging (mtimes change) and silently ignored.
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        if flags != 0b01:
            problems.append(f"{compiled.relative_to(python_dir)} is not an unchecked-hash .pyc")
            break
    if missing:
        problems.append(f"{len(missing)} of {len(sources)} modules lack cpython-313 bytecode, e.g. {missing[0]}")
    for extension in python_dir.rglob("*.so"):
        if not (".cpython-313-x86_64-linux-gnu." in extension.name or ".abi3." in extension.name):
            problems.append(f"native extension for another interpreter: {extension.relative_to(python_dir)}")
    return problems


def time_import(
    python: str,
    paths: Sequence[Path],
    module: str,
    runs: int,
    attribute: str | None = "lambda_handler",
    extra_env: dict[str, str] | None = None,
) -> tuple[float, int]:
    """Median cold-import time (s) of ``module`` over ``runs`` fresh interpreters, and module count;
    ``attribute`` must then be a callable of the module."""
    allowed = [str(p) for p in paths]
    code = PROBE.format(module=module, allowed=allowed, attribute=attribute)
    env = {
        **LAMBDA_ENV,
        **(extra_env or {}),
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
    }
    samples = []
    modules = 0
    for _ in range(runs):
        result = subprocess.run([python, "-S", "-c", code], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise CheckFailed(f"importing {module} from {paths[0]} failed:\n{result.stderr.strip()}")
        elapsed, modules, outside = ast.literal_eval(result.stdout.strip().splitlines()[-1])
        if outside:
            raise CheckFailed(f"{module} imported modules from outside the build: {outside}")
        samples.append(elapsed)
    return statistics.median(samples), modules


def check_library_imports(python: str, paths: Sequence[Path]) -> list[str]:
    """Library modules that fail to import with only the layer and the runtime SDK: a runtime
    dependency missing from layers/shared/requirements.txt shows here."""
    env = {**LAMBDA_ENV, "PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(map(str, paths))}
    result = subprocess.run([python, "-S", "-c", LIBRARY_PROBE], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return [f"importing the library failed:\n{result.stderr.strip()}"]
    failed: list[str] = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    return [f"does not import from the built layer: {line}" for line in failed]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--python", default="python3.13", help="CPython 3.13 interpreter")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    version = subprocess.run(
        [args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    )
    if version.returncode != 0 or version.stdout.strip() != "3.13":
        print(f"{args.python} is not CPython 3.13 (the Lambda runtime's version)", file=sys.stderr)
        return 1

    build = args.build_dir
    layer = build / LAYER
    problems = check_layer(layer)
    figures: dict[str, object] = {}
    if layer.is_dir():
        unzipped, zipped = _tree_size(layer), _zipped_size(layer)
        figures["layer_unzipped_mb"] = round(unzipped / 1e6, 1)
        figures["layer_zipped_mb"] = round(zipped / 1e6, 1)
        figures["layer_modules"] = len(list((layer / "python").rglob("*.py")))
        print(f"layer {LAYER}: {_mb(unzipped)} unzipped, {_mb(zipped)} zipped")

    started = time.perf_counter()
    sdk = ensure_runtime_sdk(build, args.python)
    floor, _ = time_import(args.python, [sdk], "boto3", args.runs, attribute=None)
    figures["floor_import_boto3_ms"] = round(floor * 1000)
    print(f"floor: import boto3 {floor * 1000:.0f} ms")
    problems.extend(check_library_imports(args.python, [layer / "python", sdk]))
    for function, module in HANDLERS.items():
        code_dir = build / function
        if not code_dir.is_dir():
            problems.append(f"{code_dir} is missing (run sam build)")
            continue
        for label, extra in (("tracing on", {}), ("tracing off", {"POWERTOOLS_TRACE_DISABLED": "true"})):
            try:
                median, modules = time_import(
                    args.python, [code_dir, layer / "python", sdk], module, args.runs, extra_env=extra
                )
            except CheckFailed as exc:
                problems.append(str(exc))
                break
            key = f"{function}_import_ms" + ("" if not extra else "_tracing_off")
            figures[key] = round(median * 1000)
            figures[f"{function}_modules" + ("" if not extra else "_tracing_off")] = modules
            print(
                f"{function} ({label}): import {module}.lambda_handler {median * 1000:.0f} ms "
                f"(median of {args.runs}, {modules} modules), code {_tree_size(code_dir) / 1000:.0f} kB"
            )
    figures["check_seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(figures, indent=1))
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
