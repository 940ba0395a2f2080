"""``moto_server`` as a child process on 127.0.0.1, for the local stack.

A child process rather than moto's in-process server keeps moto's Flask threads and memory
out of the process that runs the handlers, like the real split between Lambda and AWS.

moto evaluates a DynamoDB condition and then writes, in two steps and without a lock, so two
concurrent conditional writes to one item can both succeed on a busy machine. DynamoDB makes
each conditional write atomic, and every lease in this project (claims, the shared token, the
identity cache) relies on that. `serialize_dynamodb_writes` restores it: the child server is
started through it, and the test suite's in-process server calls it too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import IO, Any

LOCALHOST = "127.0.0.1"


class MotoStartError(RuntimeError):
    """moto_server did not come up (exited, or never answered)."""


def free_port(host: str = LOCALHOST) -> int:
    """A port the OS considers free right now (a small race remains until someone binds it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: the DynamoDB backend's writes, each of which checks a condition before it writes
DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
_serialized = False


def serialize_dynamodb_writes() -> None:
    """Make moto's DynamoDB writes atomic, as DynamoDB's are, by running them one at a time.

    Idempotent; call it in the process that runs moto's server, before it serves.
    """
    global _serialized
    if _serialized:
        return
    import functools

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in DYNAMODB_WRITES:
        write = getattr(DynamoDBBackend, name)

        @functools.wraps(write)
        def serialized(self: Any, *args: Any, original: Any = write, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, serialized)
    _serialized = True


def serve(argv: list[str]) -> int:
    """Run ``moto_server`` with `argv`, its DynamoDB writes serialized (the child's entry point)."""
    from moto.server import main

    serialize_dynamodb_writes()
    main(argv)
    return 0


def moto_command(host: str, port: int) -> list[str]:
    """This interpreter running moto's server (so the child matches our moto), writes serialized."""
    return [sys.executable, "-c", "import sys; from dmhub_adapter_tools.local.moto import serve; "
            "sys.exit(serve(sys.argv[1:]))", "-H", host, "-p", str(port)]


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the child if we die without cleaning up (e.g. SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class MotoServer:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, port: int | None = None, *, host: str = LOCALHOST, verbose: bool = False) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.verbose = verbose
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 20.0) -> MotoServer:
        # Its request log goes to a temp file (shown if startup fails) unless asked for.
        self._log = None if self.verbose else tempfile.TemporaryFile()  # noqa: SIM115
        kwargs: dict[str, Any] = {}
        if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
            kwargs["preexec_fn"] = _die_with_parent
        self.process = subprocess.Popen(
            moto_command(self.host, self.port),
            stdin=subprocess.DEVNULL,
            stdout=self._log if self._log else None,
            stderr=subprocess.STDOUT if self._log else None,
            # Its own session: a terminal's Ctrl-C reaches only us and we stop it in order.
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            **kwargs,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if self.process.poll() is not None:
                raise MotoStartError(f"moto_server exited with code {self.process.returncode}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2) as response:  # noqa: S310
                    response.read()
                return
            except urllib.error.HTTPError:
                return  # it answered HTTP, so it is serving
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise MotoStartError(f"moto_server did not answer on {self.url} within {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.3)

    def _log_tail(self) -> str:
        if self._log is None:
            return "(output shown above)"
        self._log.seek(0)
        return self._log.read()[-2000:].decode("utf-8", "replace").strip()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; always reaps the child."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __enter__(self) -> MotoServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
