"""The externalId DM Hub sees: the mapping's natural key, namespaced by source and account.

DM Hub deduplicates customer events on ``externalId`` alone and *updates* the stored event
when one arrives again. A mapping's key (``{ToUserName}|{MsgId}``, ``swh|{webhook-id}``) is
only unique inside one source and account, so without a namespace whoever signs for one
account could rewrite another's events by reusing its key.

The rule (:func:`dmhub_external_id`), deterministic so redeliveries and replays collapse:

- ``{source}:{account}:{externalId}`` when that is at most 255 characters;
- otherwise ``{source}:{account}:~sha256:{hex}``, ``hex`` the SHA-256 of the whole
  ``{source}:{account}:{externalId}`` in UTF-8 (at most 63 + 64 + 2 + 8 + 64 = 201 characters).

Source names never contain ``:`` (``[a-z0-9-]``) nor do account names
(``[A-Za-z0-9_.-]``), so the first two colons always delimit the namespace: two accounts can
never produce the same value. A key that itself starts with ``~sha256:`` is hashed too, so
a short key cannot pose as the hashed form of a long one.

The claim key stays ``{source}#{account}#{externalId}`` of the mapping's own key, so claims
written before this rule still deduplicate (see docs/security.md, migration).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from dmhub_adapter.model.rules import EXTERNAL_ID_MAX

if TYPE_CHECKING:
    from dmhub_adapter.model.customer_event import CustomerEvent

#: marks the hashed form; a mapping key starting with it is always hashed
HASH_MARKER = "~sha256:"


def dmhub_external_id(source: str, account: str, external_id: str) -> str:
    """The namespaced externalId for DM Hub (see the module docstring for the exact rule)."""
    whole = f"{source}:{account}:{external_id}"
    if len(whole) <= EXTERNAL_ID_MAX and not external_id.startswith(HASH_MARKER):
        return whole
    digest = hashlib.sha256(whole.encode("utf-8")).hexdigest()
    return f"{source}:{account}:{HASH_MARKER}{digest}"


def namespaced(event: CustomerEvent, source: str, account: str) -> CustomerEvent:
    """A copy of ``event`` whose externalId is :func:`dmhub_external_id` of its own."""
    if not event.externalId:
        return event
    return event.model_copy(update={"externalId": dmhub_external_id(source, account, event.externalId)})
