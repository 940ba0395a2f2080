"""The DM Hub emulator: ``server`` (HTTP endpoints and control API), ``rules`` (DM Hub's event
rules), ``state`` (stored events, customers, tokens, partitions)."""
