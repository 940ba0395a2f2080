"""Every shell block of README.md and docs/*.md marked runnable (an info string such as
```` ```bash runnable ````) runs as written against a started stack.

Each block runs in a fresh ``bash -euo pipefail`` whose working directory holds what a clone
holds (symlinks to the repository's top-level entries, ``.venv`` to this interpreter's
environment), so files a block writes stay out of the checkout. The stack runs on a free port
rather than 3000; the shell gets ``DMHUB_ADAPTER_PORT`` (what ``dev --print-env`` exports, and
what ``--print-env`` and ``send-sample`` default to) and ``DMHUB_ADAPTER_GATEWAY``, nothing else
of the stack: blocks that need more must ``eval "$(dmhub-adapter dev --print-env)"`` as the
docs tell readers to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningStack, start_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(?:bash|sh|shell)[ \t]+runnable[ \t]*\n(.*?)^```", re.S | re.M)


def runnable_blocks() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            found.append((f"{path.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}", match.group(1)))
    return found


BLOCKS = runnable_blocks()


def test_the_docs_mark_their_runnable_blocks() -> None:
    where = {w.split(":")[0] for w, _ in BLOCKS}
    assert {"README.md", "docs/local-stack.md"} <= where, where


@pytest.fixture(scope="module")
def docs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("docs-stack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    for entry in ROOT.iterdir():
        if entry.name in (".venv", ".git") or entry.name.startswith(".venv"):
            continue
        (tmp_path / entry.name).symlink_to(entry)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the environment running these tests
    return tmp_path


@pytest.mark.parametrize(("where", "block"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_a_runnable_block_runs_as_written(docs_stack: RunningStack, clone: Path, where: str, block: str) -> None:
    port = docs_stack.gateway.rsplit(":", 1)[1]
    strip = ("AWS_", "DMHUB_", "IDEMPOTENCY_TABLE", "EVENT_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "UNMAPPED_",
             "SECRETS_PREFIX", "MAPPINGS_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(strip)}
    env.update({"PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                "DMHUB_ADAPTER_PORT": port, "DMHUB_ADAPTER_GATEWAY": docs_stack.gateway})
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{where} failed ({result.returncode}):\n{block}\n--- stdout\n{result.stdout}" \
                                   f"\n--- stderr\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
