"""SenderFunction: SQS batches → DM Hub CustomerEvents, with partial batch responses.

This module only adapts the event: the settings are read at import (the INIT phase; a
missing variable fails the cold start with its name) and the function object is assembled
from them; its sender is built on the first batch (see :mod:`dmhub_adapter.sender.bootstrap`).
"""

from __future__ import annotations

from dmhub_adapter.observability import Telemetry
from dmhub_adapter.sender.bootstrap import SenderFunction
from dmhub_adapter.settings import SenderSettings

settings = SenderSettings.from_env()
telemetry = Telemetry(settings.observability)
function = SenderFunction(settings, telemetry)

lambda_handler = telemetry.wrap(function.handle)
