"""The ``dmhub-adapter`` command line.

Each module in this package that defines ``register(subparsers)`` adds one command (or a
command group); heavy imports stay inside the command functions so ``--help`` is instant.
A command function returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

#: what a command says when it finds no stack to talk to
STACK_HINT = (
    'point this shell at a stack first: eval "$(dmhub-adapter dev --print-env)" for the local one '
    "(add --port P when it is not on 3000), or AWS credentials, AWS_REGION and the stack's outputs "
    "as variables for a deployed one (docs/operations.md)"
)


class CommandError(Exception):
    """A user-facing failure: printed on stderr without a traceback, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmhub-adapter",
        description="Turn third-party webhooks into DM Hub CustomerEvents: map payloads, check configs, "
        "run the local stack, replay failures and read DM Hub back.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
    except CommandError as exc:
        message = str(exc)
        if _names_missing_environment(message) and "--print-env" not in message:
            message += f"; {STACK_HINT}"
        print(f"dmhub-adapter {args.command}: {message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `dmhub-adapter events query | head`: the reader left; no traceback, nothing more to write.
        _silence_stdout()
        return 0
    except Exception as exc:
        if not _is_missing_stack(exc):
            raise
        print(f"dmhub-adapter {args.command}: {type(exc).__name__}: {exc}; {STACK_HINT}", file=sys.stderr)
        return 1
    return int(code or 0)


def _names_missing_environment(message: str) -> bool:
    """Whether a command's error says it found no stack environment (region, credentials, a variable)."""
    return ("environment variable" in message and "is not set" in message) or any(
        name in message for name in ("NoRegionError", "NoCredentialsError", "Unable to locate credentials"))


def _is_missing_stack(exc: Exception) -> bool:
    """An error that means no stack environment: no region, no credentials, a variable unset."""
    try:
        from botocore.exceptions import NoCredentialsError, NoRegionError
    except ImportError:  # pragma: no cover - botocore is a dependency
        return False
    if isinstance(exc, (NoRegionError, NoCredentialsError)):
        return True
    return isinstance(exc, RuntimeError) and _names_missing_environment(str(exc))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
