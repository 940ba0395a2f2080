"""What keeps the cold start short: one boto3 session for all clients, a Tracer that patches
botocore only, and mapping files that load without per-value signature parsing."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar

import boto3.session
import pytest

from dmhub_adapter import aws
from dmhub_adapter.mapping import config
from dmhub_adapter.mapping.config import ValueSpec, parse_mapping
from tests.conftest import ROOT


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every ``boto3.session.Session`` the client cache creates, clients cache empty around the test."""
    created: list[Any] = []
    real = boto3.session.Session

    def counting(*args: Any, **kwargs: Any) -> Any:
        session = real(*args, **kwargs)
        created.append(session)
        return session

    monkeypatch.setattr(boto3.session, "Session", counting)
    aws.reset_clients()
    yield created
    aws.reset_clients()


def test_all_clients_come_from_one_session(sessions: list[Any]) -> None:
    dynamodb = aws.client("dynamodb")
    sqs = aws.client("sqs")
    secrets = aws.client("secretsmanager")

    assert len(sessions) == 1
    assert aws.client("dynamodb") is dynamodb and aws.client("sqs") is sqs
    assert {dynamodb.meta.service_model.service_name, sqs.meta.service_model.service_name,
            secrets.meta.service_model.service_name} == {"dynamodb", "sqs", "secretsmanager"}
    assert dynamodb.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}  # 3 retries


def test_reset_forgets_the_session_so_a_new_endpoint_is_used(
    sessions: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = aws.client("sqs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")

    aws.reset_clients()
    after = aws.client("sqs")

    assert len(sessions) == 2 and after is not before
    assert after.meta.endpoint_url == "http://127.0.0.1:9"


STACK_ENV = {
    "IDEMPOTENCY_TABLE": "table",
    "EVENT_QUEUE_URL": "https://sqs.local/events",
    "UNMAPPED_QUEUE_URL": "https://sqs.local/unmapped",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.local/dlq",
}


def _load_app(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_app_{uuid.uuid4().hex}",
                                                  ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_ingest_app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for name, value in STACK_ENV.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"ingest_app_{uuid.uuid4().hex}",
                                                  ROOT / "functions" / "ingest" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _RecordingTracer:
    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.built.append(kwargs)

    def capture_lambda_handler(self, handler: Any, capture_response: bool = True) -> Any:
        def traced(event: Any, context: Any) -> Any:
            return handler(event, context)

        traced.capture_response = capture_response  # type: ignore[attr-defined]
        return traced


def test_tracing_on_patches_botocore_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import aws_lambda_powertools

    _RecordingTracer.built = []
    monkeypatch.setattr(aws_lambda_powertools, "Tracer", _RecordingTracer)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")

    app = _load_ingest_app(monkeypatch)

    assert _RecordingTracer.built == [{"service": app.settings.observability.service, "patch_modules": ("botocore",)}]
    assert app.lambda_handler.capture_response is False


def test_tracing_off_builds_no_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    import aws_lambda_powertools

    _RecordingTracer.built = []
    monkeypatch.setattr(aws_lambda_powertools, "Tracer", _RecordingTracer)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")

    app = _load_ingest_app(monkeypatch)

    assert _RecordingTracer.built == [] and not hasattr(app.lambda_handler, "capture_response")


@pytest.mark.parametrize(
    ("function", "missing", "bad"),
    [
        ("ingest", "EVENT_QUEUE_URL", None),
        ("ingest", "UNMAPPED_QUEUE_URL", None),
        ("ingest", None, ("CLAIM_WAIT_MS", "soon")),
        ("sender", "DEAD_LETTER_QUEUE_URL", None),
        ("sender", None, ("DMHUB_READ_TIMEOUT", "-1")),
        ("sender", None, ("DMHUB_BASE_URL", "ftp://dmhub")),
    ],
)
def test_a_missing_or_malformed_variable_fails_the_cold_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, function: str, missing: str | None, bad: tuple[str, str] | None
) -> None:
    from dmhub_adapter.settings import SettingsError

    for name, value in STACK_ENV.items():
        monkeypatch.setenv(name, value)
    if missing:
        monkeypatch.delenv(missing)
    if bad:
        monkeypatch.setenv(*bad)
    named = missing or (bad[0] if bad else "")
    with pytest.raises(SettingsError, match=named):
        _load_app(function)


def test_private_lists_of_parsed_values_are_fresh_per_value() -> None:
    first = ValueSpec(path="a")
    second = ValueSpec(path="b")

    assert first._template_parts == [] and first._template_parts is not second._template_parts


def test_mapping_files_are_read_with_libyaml_when_pyyaml_has_it() -> None:
    import yaml

    assert config._SAFE_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)
    with pytest.raises(config.MappingConfigError, match="invalid YAML"):
        parse_mapping("source: [unclosed", "<test>")
    with pytest.raises(config.MappingConfigError):
        parse_mapping("source: !!python/object:os.system x", "<test>")  # a safe loader refuses tags


def _modules_after_first_request(name: str, first: tuple[str, ...]) -> set[str]:
    """The modules a fresh interpreter holds after importing a handler and what its first
    request imports."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(ROOT / 'functions' / name / 'app.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"for m in {first!r}: __import__(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "IDEMPOTENCY_TABLE": "t", "EVENT_QUEUE_URL": "https://sqs.test/q",
           "UNMAPPED_QUEUE_URL": "https://sqs.test/u", "DEAD_LETTER_QUEUE_URL": "https://sqs.test/d",
           "POWERTOOLS_TRACE_DISABLED": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_ingest_reads_secrets_without_powertools_parameters() -> None:
    loaded = _modules_after_first_request(
        "ingest", ("dmhub_adapter.ingest.bootstrap", "dmhub_adapter.ingest.pipeline", "dmhub_adapter.secrets"))
    assert "dmhub_adapter.secrets" in loaded
    assert "aws_lambda_powertools.utilities.parameters" not in loaded


def test_the_sender_answers_batches_without_powertools_batch() -> None:
    loaded = _modules_after_first_request("sender", ("dmhub_adapter.sender.bootstrap", "dmhub_adapter.sender.core"))
    assert "dmhub_adapter.sender.batch" in loaded
    assert not {"aws_lambda_powertools.utilities.batch", "asyncio"} & loaded
