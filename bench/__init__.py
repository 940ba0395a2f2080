"""Benchmarks: warm ingest cost, cold imports, sender throughput, requests per event."""
