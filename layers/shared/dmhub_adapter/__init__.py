"""dmhub-adapter: third-party webhooks in, DM Hub CustomerEvents out.

The package is shipped as the Lambda layer both functions use. Modules are grouped by
architectural role:

- ``model``     the DM Hub CustomerEvent contract and the queue envelope
- ``mapping``   the per-source mapping config engine (YAML + JMESPath + converters)
- ``sources``   one module per platform dialect (verification, parsing, reply)
- ``ingest``    the ingest pipeline behind ``functions/ingest``
- ``store``     the DynamoDB data-access layer (claims, token, identity caches)
- ``dmhub``     the DM Hub API client, the shared token, identity resolution, the emulator
- ``sender``    the delivery logic behind ``functions/sender``
- ``local``     the local stack (moto_server, gateway, poller)
- ``cli``       the ``dmhub-adapter`` command line
"""

__version__ = "0.1.0"
