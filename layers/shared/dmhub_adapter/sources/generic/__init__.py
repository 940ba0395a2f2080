"""The generic adapter: a source defined by its mapping file alone; its config blocks are
documented in :mod:`dmhub_adapter.sources.generic.adapter`."""

from dmhub_adapter.sources.generic.adapter import (
    GenericSource,
    build,
    check_config,
    check_secret,
    secret_fields,
    sign_request,
)

__all__ = ["GenericSource", "build", "check_config", "check_secret", "secret_fields", "sign_request"]
