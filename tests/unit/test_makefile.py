"""``make dev`` passes flags through ``ARGS`` (issue 16, item 7)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_dev_passes_args_to_the_command() -> None:
    # -n prints the recipe; -o treats the venv stamp as up to date so nothing is installed
    result = subprocess.run(["make", "-n", "-o", ".venv/.installed", "dev", 'ARGS=--port 3100 --json'],
                            cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert ".venv/bin/dmhub-adapter dev --port 3100 --json" in result.stdout
