"""dmhub-adapter: third-party webhooks in, DM Hub CustomerEvents out.

The package is the Lambda layer both functions use, and holds only what runs in Lambda
(development tooling is the separate ``dmhub_adapter_tools`` package). Modules by role:

- ``settings``, ``observability``, ``aws``  configuration, telemetry, boto3 clients
- ``webhook``, ``apigw``, ``errors``        the request/response types and refusals
- ``model``     the DM Hub CustomerEvent contract and the queue envelope
- ``mapping``   the per-source mapping config engine (YAML + JMESPath + converters)
- ``sources``   one package per platform dialect (verification, parsing, reply)
- ``ingest``    the ingest pipeline behind ``functions/ingest`` and its composition root
- ``store``     every item of the DynamoDB table, behind small Protocols
- ``secrets``, ``queue``  every Secrets Manager read, every SQS send
- ``dmhub``     the DM Hub API client, the shared token, identity resolution
- ``sender``    the delivery logic behind ``functions/sender`` and its composition root
"""

__version__ = "0.1.0"
