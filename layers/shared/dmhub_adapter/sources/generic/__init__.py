"""The generic adapter: a source defined by its mapping file alone, no Python per platform.

Three blocks of the mapping file configure it (all validated by :func:`check_config`, which
the registry runs when the file loads and ``check-config`` reports):

``verification``  the signature scheme (:mod:`.signatures`); ``{scheme: none}`` must be
                  written out to accept unauthenticated requests. A file without the block
                  still maps payloads (``map`` dry runs) but its requests get 503 until one
                  is configured: nothing is accepted unauthenticated by omission.
``reply``         how the platform wants to be answered: status, content type and a body
                  template for success and for each kind of rejection (default JSON).
``options``       ``maxBodyBytes`` (default the MAX_BODY_BYTES setting), ``requestValues``
                  (header/query values copied into every message as ``_request.<name>``, e.g.
                  a delivery id used as externalId), ``handshake`` (a GET that echoes a query
                  parameter, for URL verification).

The payload ``format`` (json, form, xml) and the ``messages`` split come from the mapping file.
"""

from dmhub_adapter.sources.generic.adapter import GenericSource, build, check_config

__all__ = ["GenericSource", "build", "check_config"]
