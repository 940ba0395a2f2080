"""Metric names of the ingest (reported to a :class:`~dmhub_adapter.observability.MetricsSink`).

The pipeline only counts; the function decides where counts go (Powertools EMF in Lambda,
a recorder in tests). Units: ``Received`` counts requests, ``Enqueued``/``Duplicate`` count
events, ``Skipped``/``Unmapped`` count messages, ``Rejected`` counts refused requests and
refused messages (dimension ``reason``), ``Unavailable`` counts 503 answers (dimension
``reason``: the failed step).
"""

from __future__ import annotations

from enum import StrEnum


class Metric(StrEnum):
    """The ingest's metric names."""

    RECEIVED = "Received"
    HANDSHAKE = "Handshake"
    ENQUEUED = "Enqueued"
    DUPLICATE = "Duplicate"
    SKIPPED = "Skipped"
    UNMAPPED = "Unmapped"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"


#: ``reason`` of a message refused inside an otherwise authentic payload
MESSAGE_REJECTED = "message"
