"""SenderFunction: SQS batches → DM Hub CustomerEvents, with partial batch responses.

Everything lives in :mod:`dmhub_adapter.sender.handler`; importing it here runs during the
Lambda init phase, and its clients are built on the first invocation and reused after."""

from __future__ import annotations

from dmhub_adapter.sender.handler import lambda_handler

__all__ = ["lambda_handler"]
