"""dmhub-adapter's development and operator tooling: never shipped in the Lambda layer.

- ``cli``       the ``dmhub-adapter`` command line
- ``local``     the local stack (moto_server, gateway, poller, demo accounts, samples)
- ``emulator``  the DM Hub emulator the local stack and the tests talk to
- ``dryrun``    payload → CustomerEvents without signatures or AWS (``map``)
- ``replay``    UnmappedQueue records through today's mappings (``replay unmapped``)

It imports the runtime package :mod:`dmhub_adapter`; the runtime never imports it.
"""
