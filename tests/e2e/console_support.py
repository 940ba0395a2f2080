"""The operator console as a separate process over a running local stack, and a real headless
Chromium (the system's ``chromium``, driven by Playwright through its executable path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import RunningStack

ROOT = Path(__file__).resolve().parents[2]
#: where screenshots go when DMHUB_CONSOLE_SCREENSHOTS=1 (docs/console.md shows them)
DOCS_IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1200, "height": 800}


def console_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("dmhub-adapter")
    if script.exists():
        return [str(script), "console", *args]
    return [sys.executable, "-m", "dmhub_adapter_tools.cli", "console", *args]


@dataclass
class RunningConsole:
    process: subprocess.Popen[bytes]
    url: str  # with the access token
    log_path: Path

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        return self.url.rsplit("token=", 1)[1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_console(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
                  ) -> RunningConsole:
    ready = tmp_path / "console-ready.txt"
    log_path = tmp_path / "console.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(
        console_command("--port", str(free_port()), "--ready-file", str(ready), *args),
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    log_file.close()
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"the console did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    return RunningConsole(process=process, url=ready.read_text(encoding="utf-8").strip(), log_path=log_path)


def console_for(stack: RunningStack, tmp_path: Path, *args: str) -> RunningConsole:
    port = stack.gateway.rsplit(":", 1)[1]
    return start_console(tmp_path, "--gateway-port", port, *args)


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise AssertionError("the browser tests need Chromium: apt-get install -y chromium (or set CHROMIUM)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Any, console: RunningConsole) -> Any:
    """A fresh browser context that has opened the console's tokenised URL (so it holds the cookie)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(console.url)
    return page


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """A PNG of the page; also into docs/images when DMHUB_CONSOLE_SCREENSHOTS=1."""
    path = tmp_path / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=False)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    if os.environ.get("DMHUB_CONSOLE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)
    return path
