"""``dmhub-adapter dev``: the whole stack on this machine, without AWS or Docker."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run the local stack: moto_server, DM Hub emulator, gateway on :3000, SQS poller",
        description="Start moto_server (DynamoDB, SQS, Secrets Manager) with the stack's resources and the "
        "accounts' secrets, the DM Hub emulator (unless DMHUB_BASE_URL is set: then that DM Hub is used "
        "with the accounts file's dmhub credentials), a local API Gateway on 127.0.0.1 that calls the "
        "real ingest handler, and a poller that feeds EventQueue to the real sender handler. "
        "Ctrl-C or SIGTERM stops everything it started.",
    )
    parser.add_argument("--accounts", metavar="FILE", help="accounts YAML (default: the packaged demo accounts)")
    parser.add_argument("--port", type=int, default=None,
                        help="gateway port on 127.0.0.1 (default 3000; 0 = any); with --print-env the port of the "
                        "stack to describe (default $DMHUB_ADAPTER_PORT, else 3000)")
    parser.add_argument("--moto-port", type=int, default=None, help="moto_server port (default: a free one)")
    parser.add_argument("--emulator-port", type=int, default=None, help="DM Hub emulator port (default: a free one)")
    parser.add_argument(
        "--dmhub-base-url",
        default=os.environ.get("DMHUB_BASE_URL") or None,
        help="use this DM Hub instead of the emulator (default: $DMHUB_BASE_URL)",
    )
    parser.add_argument("--functions-dir", help="directory holding ingest/app.py and sender/app.py "
                        "(default: the checkout's functions/)")
    parser.add_argument("--mappings-dir", help="mapping configs overriding the packaged ones (MAPPINGS_DIR)")
    parser.add_argument("--visibility-timeout", type=int, default=30, metavar="S",
                        help="EventQueue visibility timeout: how soon a failed message is retried (default 30)")
    parser.add_argument("--max-receive-count", type=int, default=5, metavar="N",
                        help="receives before SQS moves a message to the DLQ (default 5)")
    parser.add_argument("--poll-wait", type=int, default=20, metavar="S",
                        help="SQS long-poll wait of the poller, 0-20 (default 20)")
    parser.add_argument("--batch-size", type=int, default=10, metavar="N", help="messages per sender batch, 1-10")
    parser.add_argument("--sender-timeout", type=float, default=30.0, metavar="S",
                        help="the sender's Lambda timeout, as its context reports it (default 30, as deployed)")
    parser.add_argument("--ready-file", metavar="PATH",
                        help="write the URLs and pids as JSON to PATH once everything is up")
    parser.add_argument("--print-env", action="store_true",
                        help="print export lines for the stack running on --port (for eval in another shell) "
                        "and exit")
    parser.add_argument("--json", dest="json_lines", action="store_true",
                        help="print the gateway's and the poller's lines as JSON objects, one per line "
                        "(the banner goes to stderr)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show moto_server's and the emulator's logs and the handlers' INFO logs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.local.handlers import HandlerLoadError
    from dmhub_adapter_tools.local.moto import MotoStartError
    from dmhub_adapter_tools.local.stack import DevOptions, DevStack

    if args.print_env:
        return print_env(args.port if args.port is not None else _port_from_env())
    if args.port is None:
        args.port = 3000
    if not 0 <= args.poll_wait <= 20:
        raise CommandError("--poll-wait must be between 0 and 20")
    if not 1 <= args.batch_size <= 10:
        raise CommandError("--batch-size must be between 1 and 10")
    environment = {"MAPPINGS_DIR": check_mappings_dir(args.mappings_dir)} if args.mappings_dir else {}
    options = DevOptions(
        accounts_file=args.accounts,
        port=args.port,
        moto_port=args.moto_port,
        emulator_port=args.emulator_port,
        dmhub_base_url=args.dmhub_base_url,
        functions_dir=args.functions_dir,
        visibility_timeout=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        poll_wait_seconds=args.poll_wait,
        batch_size=args.batch_size,
        sender_timeout=args.sender_timeout,
        ready_file=args.ready_file,
        verbose=args.verbose,
        json_lines=args.json_lines,
        environment=environment,
    )

    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    # Installed before anything starts, so a signal during start-up still stops what is running.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        import yaml

        from dmhub_adapter_tools.local.accounts import AccountsFileError

        try:
            stack = DevStack(options)
        except AccountsFileError as exc:
            raise CommandError("the accounts file has mistakes; nothing was started:\n  "
                               + "\n  ".join(exc.problems)) from exc
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise CommandError(f"accounts file: {exc}") from exc
        try:
            stack.start()
        except (HandlerLoadError, MotoStartError, ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"cannot start the local stack: {exc}") from exc
        try:
            if not stop.is_set():
                print(stack.banner(), flush=True, file=sys.stderr if args.json_lines else sys.stdout)
                try:
                    stack.write_ready_file()
                except OSError as exc:
                    raise CommandError(f"cannot write the ready file: {exc}") from exc
            stop.wait()
        finally:
            print("stopping the local stack…", flush=True, file=sys.stderr if args.json_lines else sys.stdout)
            stack.remove_ready_files()
            stack.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped.", flush=True, file=sys.stderr if args.json_lines else sys.stdout)
    return 0  # Ctrl-C / SIGTERM is how this command is meant to end


def _port_from_env() -> int:
    """``$DMHUB_ADAPTER_PORT`` (what ``--print-env`` exports), else 3000."""
    value = os.environ.get("DMHUB_ADAPTER_PORT", "")
    return int(value) if value.isdigit() else 3000


def check_mappings_dir(directory: str) -> str:
    """The absolute --mappings-dir, refused (with the fix) when it is missing or fails check-config."""
    from dmhub_adapter.sources.registry import check_directory
    from dmhub_adapter_tools.cli import CommandError

    path = os.path.abspath(directory)
    if not os.path.isdir(path):
        raise CommandError(f"--mappings-dir {directory}: no such directory (give the folder holding <source>.yaml "
                           "files, or leave the flag out to run the packaged mappings)")
    broken = {file: problems for file, problems in check_directory(path).items() if problems}
    if broken:
        lines = [f"{file}: {problem}" for file, problems in broken.items() for problem in problems]
        raise CommandError("--mappings-dir fails check-config; nothing was started (fix these, then "
                           "`dmhub-adapter check-config " + directory + "`):\n  " + "\n  ".join(lines))
    return path


def print_env(port: int) -> int:
    import json

    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.local.stack import environment_exports, state_file_path

    path = state_file_path(port)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CommandError(f"no local stack on port {port} (start one with `dmhub-adapter dev`)") from exc
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError as exc:
        raise CommandError(f"the local stack on port {port} is gone (stale {path})") from exc
    except (PermissionError, KeyError, TypeError, ValueError):
        pass
    print(environment_exports(info))
    return 0
