"""The SenderFunction as Lambda loads it (``functions/sender/app.py``), for tests that drive it
in-process. Its settings are read when the module loads, so a test that changes the
environment calls :meth:`SenderApp.reset_runtime` and the next call loads it afresh."""

from __future__ import annotations

import importlib.util
import uuid
from types import ModuleType
from typing import Any

from tests.conftest import ROOT


class SenderApp:
    """A lazily loaded ``functions/sender/app.py`` module."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None

    def module(self) -> ModuleType:
        if self._module is None:
            path = ROOT / "functions" / "sender" / "app.py"
            spec = importlib.util.spec_from_file_location(f"sender_app_{uuid.uuid4().hex}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._module = module
        return self._module

    def reset_runtime(self) -> None:
        """Close the loaded function's DM Hub pool and load the module afresh next time."""
        if self._module is not None:
            self._module.function.reset()
        self._module = None

    def lambda_handler(self, event: dict[str, Any], context: Any) -> Any:
        return self.module().lambda_handler(event, context)

    def runtime(self) -> Any:
        return self.module().function.runtime()

    def powertools(self) -> tuple[Any, Any]:
        telemetry = self.module().telemetry
        return telemetry.logger, telemetry.metrics


handler = SenderApp()
