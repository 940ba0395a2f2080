"""``dmhub-adapter console``: the operator console, a local web app on 127.0.0.1."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``console`` command."""
    parser = subparsers.add_parser(
        "console",
        help="operator console in the browser: queues, webhooks, traces, dead letters, mappings playground",
        description="Serve the operator console on 127.0.0.1. Without --stack it reads the local stack "
        "(`dmhub-adapter dev`, found by its gateway port); with --stack it reads a deployed stack's "
        "resources from its CloudFormation outputs with your AWS credentials, read-only unless "
        "--allow-actions. Open the URL it prints: it holds a random access token.",
    )
    parser.add_argument("--port", type=int, default=8300, help="console port on 127.0.0.1 (default 8300; 0 = any)")
    parser.add_argument("--stack", metavar="NAME", help="a deployed stack's name (default: the local stack)")
    parser.add_argument("--region", help="the deployed stack's region (default: your AWS configuration's)")
    parser.add_argument("--profile", help="AWS profile for the deployed stack")
    parser.add_argument("--allow-actions", action="store_true",
                        help="allow replay and delete on a deployed stack (always allowed locally)")
    parser.add_argument("--gateway-port", type=int, default=3000,
                        help="the local stack's gateway port (default 3000)")
    parser.add_argument("--endpoint-url", help=argparse.SUPPRESS)  # tests: CloudFormation etc. on moto_server
    parser.add_argument("--ready-file", metavar="PATH", help="write the console's URL to PATH once it serves")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Find the stack, then serve the console until Ctrl-C."""
    import uvicorn

    from dmhub_adapter_tools.cli import CommandError
    from dmhub_adapter_tools.console.app import ConsoleConfig, create_app
    from dmhub_adapter_tools.console.backend import Backend
    from dmhub_adapter_tools.console.target import TargetError, deployed_target, local_target
    from dmhub_adapter_tools.local.stack import port_is_free

    if args.port and not port_is_free(args.port):
        raise CommandError(f"port {args.port} on 127.0.0.1 is in use; choose another with --port")
    try:
        if args.stack:
            target = deployed_target(args.stack, region=args.region, profile=args.profile,
                                     allow_actions=args.allow_actions, endpoint_url=args.endpoint_url)
        else:
            target = local_target(args.gateway_port)
    except TargetError as exc:
        raise CommandError(str(exc)) from exc
    target.apply()
    app_config = ConsoleConfig.new(args.port)
    backend = Backend(target)
    backend.start_refresher()
    config = uvicorn.Config(create_app(backend, app_config), host="127.0.0.1", port=args.port,
                            log_level="warning", access_log=False, server_header=False)
    server = uvicorn.Server(config)

    def announce() -> None:
        port = server.servers[0].sockets[0].getsockname()[1]
        app_config.port = port
        url = f"http://127.0.0.1:{port}/?token={app_config.access_token}"
        what = "the local stack" if not target.deployed else f"stack {target.stack_name} ({target.region})"
        mode = "actions allowed" if target.allow_actions else "read-only (--allow-actions to replay/delete)"
        print(f"dmhub-adapter console for {what}, {mode}\n\n    {url}\n\nCtrl-C to stop.", flush=True)
        if args.ready_file:
            from pathlib import Path

            path = Path(args.ready_file)
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(url, encoding="utf-8")
            temporary.replace(path)

    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets=sockets)
        if server.started:
            announce()

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        backend.stop()
    return 0
