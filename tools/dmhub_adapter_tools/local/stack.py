"""``dmhub-adapter dev``: moto_server, the stack's resources and secrets, the DM Hub emulator,
the local gateway in front of the ingest handler and the poller behind the sender handler —
started in that order, stopped in reverse, all on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmhub_adapter_tools.local.accounts import AccountsFile, demo_accounts_path, load_checked_accounts
from dmhub_adapter_tools.local.moto import LOCALHOST, MotoServer

if TYPE_CHECKING:
    from dmhub_adapter_tools.local.poller import BatchReport
    from dmhub_adapter_tools.local.request_log import RequestRecord

log = logging.getLogger("dmhub_adapter_tools.local.stack")

#: the region and fake credentials every local AWS call uses (moto accepts any)
LOCAL_REGION = "eu-west-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}
#: variables that would send a boto3 client somewhere other than moto_server
_ENDPOINT_OVERRIDES = (
    "AWS_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_STS",
)
DEFAULT_GATEWAY = "http://127.0.0.1:3000"
DEMO_DMHUB_CREDENTIALS = {"appId": "demo-app", "secret": "demo-secret"}


@dataclass
class DevOptions:
    accounts_file: str | None = None
    port: int = 3000
    moto_port: int | None = None
    emulator_port: int | None = None
    #: a real (or other) DM Hub; None starts the emulator. Defaults to $DMHUB_BASE_URL.
    dmhub_base_url: str | None = None
    functions_dir: str | None = None
    stack_name: str = "dmhub-adapter"
    secrets_prefix: str = "dmhub-adapter"
    region: str = LOCAL_REGION
    visibility_timeout: int = 30
    max_receive_count: int = 5
    poll_wait_seconds: int = 20
    batch_size: int = 10
    # template.yaml's Timeout and MemorySize of IngestFunction and SenderFunction
    ingest_timeout: float = 10.0
    ingest_memory_mb: int = 1024
    sender_timeout: float = 30.0
    sender_memory_mb: int = 512
    ready_file: str | None = None
    verbose: bool = False
    #: print the gateway's and the poller's lines as JSON objects, one per line
    json_lines: bool = False
    #: extra environment for the handlers (e.g. MAPPINGS_DIR)
    environment: dict[str, str] = field(default_factory=dict)


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def default_emit(line: str) -> None:
    """Print one line of the stack's output, time-stamped."""
    print(f"{_stamp()} {line}", flush=True)


class DevStack:
    """Everything ``dmhub-adapter dev`` runs. :meth:`start` then :meth:`stop` (idempotent)."""

    def __init__(self, options: DevOptions, emit: Callable[[str], None] = default_emit) -> None:
        self.options = options
        self.emit = emit
        # Every mistake of the file is refused here, with its line, before anything starts.
        self.accounts: AccountsFile = load_checked_accounts(
            options.accounts_file, options.environment.get("MAPPINGS_DIR"))
        self.moto: MotoServer | None = None
        self.emulator: Any = None
        self.gateway: Any = None
        self.poller: Any = None
        self.resources: Any = None
        self.dmhub_base_url: str | None = None
        self._stopped = False
        self._written: list[Path] = []

    # -- start -------------------------------------------------------------------------------

    def start(self) -> DevStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from dmhub_adapter_tools.local.handlers import load_handler, resolve_functions_dir

        options = self.options
        # Everything that can be checked is checked before anything starts.
        functions_dir = resolve_functions_dir(options.functions_dir)
        dmhub_credentials = dict(self.accounts.dmhub)
        if dmhub_credentials and not all(dmhub_credentials.get(k) for k in ("appId", "secret")):
            raise ValueError("the accounts file's 'dmhub' block needs appId and secret")
        external = options.dmhub_base_url
        if external and not dmhub_credentials:
            raise ValueError(
                f"DM Hub {external} (DMHUB_BASE_URL / --dmhub-base-url) needs the accounts file's "
                "'dmhub' credentials (appId, secret)"
            )
        for flag, port in (("--port", options.port), ("--moto-port", options.moto_port),
                           ("--emulator-port", options.emulator_port)):
            if port and not port_is_free(port):
                raise PortInUse(f"port {port} on {LOCALHOST} is in use; choose another with {flag}")

        self.moto = MotoServer(options.moto_port, verbose=options.verbose).start()
        self._set_environment(self.moto.url)
        session = self._session()
        from dmhub_adapter_tools.local.resources import create_stack, put_accounts

        self.resources = create_stack(
            session,
            name=options.stack_name,
            secrets_prefix=options.secrets_prefix,
            max_receive_count=options.max_receive_count,
            visibility_timeout=options.visibility_timeout,
        )
        os.environ.update(self.resources.environment())

        if external:
            self.dmhub_base_url = external.rstrip("/")
        else:
            dmhub_credentials = dmhub_credentials or dict(DEMO_DMHUB_CREDENTIALS)
            self.emulator = start_emulator(
                options.emulator_port,
                dmhub_credentials,
                log=(lambda line: self.emit(f"dmhub   {line}")) if options.verbose else None,
            )
            self.dmhub_base_url = str(self.emulator.url).rstrip("/")
        os.environ["DMHUB_BASE_URL"] = self.dmhub_base_url
        put_accounts(session, options.secrets_prefix, dmhub_credentials, self.accounts.accounts)

        # The handlers read their environment at import (as in Lambda), so load them last.
        ingest = load_handler(functions_dir, "ingest")
        sender = load_handler(functions_dir, "sender")

        from dmhub_adapter_tools.local.gateway import LocalGateway
        from dmhub_adapter_tools.local.poller import QueuePoller

        self.poller = QueuePoller(
            session.client("sqs"),
            self.resources.event_queue_url,
            sender,
            batch_size=options.batch_size,
            wait_seconds=options.poll_wait_seconds,
            timeout_seconds=options.sender_timeout,
            memory_limit_in_mb=options.sender_memory_mb,
            region=options.region,
            on_batch=self._report_batch,
            max_receive_count=options.max_receive_count,
        ).start()
        self.gateway = LocalGateway(
            ingest,
            host=LOCALHOST,
            port=options.port,
            timeout_seconds=options.ingest_timeout,
            memory_limit_in_mb=options.ingest_memory_mb,
            region=options.region,
            on_request=self._report_request,
        ).start()

    def _report_request(self, record: RequestRecord) -> None:
        """One gateway line per request: readable, or a JSON object with ``--json``."""
        if self.options.json_lines:
            self.emit_json({"component": "gateway", **record.as_json()})
        else:
            self.emit(f"gateway {record.text()}")

    def _report_batch(self, report: BatchReport) -> None:
        """One poller line per delivery batch: readable, or a JSON object with ``--json``."""
        if self.options.json_lines:
            self.emit_json({"component": "sender", "time": _now_iso(), **report.as_json()})
        else:
            self.emit(f"sender  {report.text()}")

    def emit_json(self, data: dict[str, Any]) -> None:
        """Print one JSON line (``--json``) through the stack's output."""
        print(json.dumps(data, ensure_ascii=False), flush=True)

    def _set_environment(self, endpoint: str) -> None:
        """The functions' environment: everything AWS goes to moto, with fake credentials."""
        for name in _ENDPOINT_OVERRIDES:
            os.environ.pop(name, None)
        os.environ.update(FAKE_CREDENTIALS)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": self.options.region,
                "AWS_REGION": self.options.region,
                "SECRETS_PREFIX": self.options.secrets_prefix,
            }
        )
        # Each function logs under its own service name (dmhub-adapter-ingest, -sender): one
        # shared name would make the two share Powertools' logger and its Lambda context keys.
        os.environ.pop("POWERTOOLS_SERVICE_NAME", None)
        quiet = not self.options.verbose
        for name, value in {
            "POWERTOOLS_METRICS_NAMESPACE": "DmhubAdapterLocal",
            # No X-Ray daemon locally; metrics would print one EMF blob per invocation.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true" if quiet else "false",
            "POWERTOOLS_LOG_LEVEL": "WARNING" if quiet else "INFO",
        }.items():
            os.environ.setdefault(name, value)
        os.environ.update(self.options.environment)
        from dmhub_adapter import aws as aws_clients

        aws_clients.reset_clients()

    def _session(self) -> Any:
        import boto3

        return boto3.session.Session(region_name=self.options.region)

    # -- information --------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the ready file holds (and what the banner prints)."""
        assert self.gateway is not None and self.moto is not None and self.resources is not None
        gateway = self.gateway.url
        return {
            "pid": os.getpid(),
            "gateway": gateway,
            "webhooks": {
                f"{a['source']}/{a['account']}": f"{gateway}/webhooks/{a['source']}/{a['account']}"
                for a in self.accounts.accounts
            },
            "moto": self.moto.url,
            "moto_pid": self.moto.pid,
            "dmhub": self.dmhub_base_url,
            "emulator": self.emulator is not None,
            "emulator_pid": getattr(self.emulator, "pid", None),
            "accounts_file": str(Path(self.options.accounts_file).resolve())
            if self.options.accounts_file
            else str(demo_accounts_path()),
            "environment": {
                "AWS_ENDPOINT_URL": self.moto.url,
                "AWS_DEFAULT_REGION": self.options.region,
                "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                "DMHUB_BASE_URL": self.dmhub_base_url,
                **self.resources.environment(),
                **self.options.environment,  # MAPPINGS_DIR with --mappings-dir
                "DMHUB_ADAPTER_PORT": str(self.gateway.server.server_address[1]),
            },
        }

    def write_ready_file(self) -> None:
        """The ready file if asked for, and always the state file ``dev --print-env`` reads."""
        text = json.dumps(self.info(), indent=2)
        paths = [state_file_path(self.gateway.server.server_address[1])]
        if self.options.ready_file:
            paths.append(Path(self.options.ready_file))
        for path in paths:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(path)  # atomic: a watcher never reads half a file
            self._written.append(path)

    def remove_ready_files(self) -> None:
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written.clear()

    def banner(self) -> str:
        """What `dev` prints once the stack is up: URLs, the accounts and a command to try."""
        info = self.info()
        port = self.gateway.server.server_address[1]
        port_flag = "" if port == 3000 else f" --port {port}"
        using_demo = not self.options.accounts_file
        lines = [
            "dmhub-adapter local stack is up (Ctrl-C to stop)",
            "",
            f"  gateway      {info['gateway']}   (POST/GET /webhooks/{{source}}/{{account}})",
            f"  DM Hub       {info['dmhub']}" + ("   (emulator)" if self.emulator else "   (external)"),
            f"  moto_server  {info['moto']}   (DynamoDB, SQS, Secrets Manager)",
            "",
            f"  accounts ({'demo file' if using_demo else info['accounts_file']}):",
        ]
        for entry in self.accounts.accounts:
            secret = entry.get("secret") or {}
            shown = ", ".join(
                f"{k}={_banner_value(v) if using_demo else _mask(str(v))}" for k, v in secret.items()
            )
            lines.append(f"    {entry['source']}/{entry['account']}: {info['gateway']}/webhooks/"
                         f"{entry['source']}/{entry['account']}")
            lines.append(f"        {shown}")
        lines += [
            "",
            "  point another shell's dmhub-adapter events/trace/replay/accounts at this stack:",
            f"    eval \"$(dmhub-adapter dev --print-env{port_flag})\"",
            "",
            "  try:",
            f"    {send_sample_command(info['gateway'], self.options.accounts_file)}",
            "",
        ]
        return "\n".join(lines)

    # -- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop in reverse order; every part is stopped even if another fails to."""
        if self._stopped:
            return
        self._stopped = True
        if self.poller is not None:
            # Let a batch in delivery finish (it still needs moto), but not a long poll: that
            # one ends when moto goes away.
            self.poller.stop(timeout=0)
            self.poller.wait_idle(self.options.sender_timeout)
        for name, part in (("gateway", self.gateway), ("emulator", self.emulator), ("moto_server", self.moto)):
            if part is None:
                continue
            try:
                part.stop()
            except Exception as exc:
                log.warning("stopping the %s failed: %s", name, exc)
        if self.poller is not None:
            self.poller.stop(timeout=5.0)


class PortInUse(RuntimeError):
    pass


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers bind: a port merely in TIME_WAIT is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def state_file_path(gateway_port: int) -> Path:
    """Where a running stack on ``gateway_port`` describes itself for other terminals."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"dmhub-adapter-dev-{uid}-{gateway_port}.json"


def environment_exports(info: dict[str, Any]) -> str:
    """``export NAME=value`` lines that point commands in another shell at a running stack."""
    values = {**info["environment"], "DMHUB_ADAPTER_GATEWAY": info["gateway"]}
    return "\n".join(f"export {name}={shlex.quote(str(value))}" for name, value in values.items())


def _mask(value: str) -> str:
    return value[:2] + "…" if len(value) > 4 else "…"


def send_sample_command(gateway: str, accounts_file: str | None) -> str:
    command = "dmhub-adapter send-sample wechat-follow"
    if gateway.rstrip("/") != DEFAULT_GATEWAY:
        command += f" --gateway {gateway}"
    if accounts_file:
        command += f" --accounts {accounts_file}"
    return command


# -- the DM Hub emulator ------------------------------------------------------------------------


def start_emulator(
    port: int | None, credentials: dict[str, Any], *, log: Callable[[str], None] | None = None
) -> Any:
    """The DM Hub emulator on 127.0.0.1 (a thread of this process) accepting ``credentials``;
    returns the started server (``url``, ``stop()``, knobs)."""
    from dmhub_adapter_tools.emulator.server import EmulatorServer

    return EmulatorServer(
        LOCALHOST,
        port or 0,
        app_id=str(credentials["appId"]),
        secret=str(credentials["secret"]),
        log=log,
    ).start()


def _banner_value(value: object) -> str:
    """A demo secret's value for the banner: key sets and PEM keys summarised, not dumped."""
    if isinstance(value, dict):
        return f"<{len(value)} key{'s' if len(value) != 1 else ''}: {', '.join(map(str, value))}>"
    text = str(value)
    if "-----BEGIN" in text:
        return "<PEM key>"
    return text
