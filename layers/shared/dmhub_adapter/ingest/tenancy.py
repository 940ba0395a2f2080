"""Checks that tie an authentic payload to the account in the URL, run before anything is enqueued.

A signature proves who holds the app credentials, not which account a push belongs to: when
several accounts share credentials (one Youzan app authorised by several shops, one Taobao app
for several sellers, a WeChat token reused across official accounts), a push captured at one
account's URL verifies at another's. A mapping's ``accountBinding`` names the payload value
that identifies the account (``kdt_id``, ``user_id``, ``ToUserName``) and the secret field it
must equal (``kdtId``, ``userId``, ``originalId``).

A request with any message bound elsewhere (or carrying no value where one is required) is
refused whole with 403 and nothing is kept: the payload belongs to another account, a record
on the UnmappedQueue would be replayed under this account's name, and a 4xx shows up in the
platform's delivery console where the operator can fix the URL. An account whose secret has
no such field is not checked (one warning per account and container), so an upgrade does not
break secrets written before the binding existed.
"""

from __future__ import annotations

import logging
from typing import Any

from jmespath.exceptions import JMESPathError

from dmhub_adapter.errors import Forbidden
from dmhub_adapter.mapping import converters
from dmhub_adapter.mapping.engine import MappingError, decode_message
from dmhub_adapter.mapping.functions import is_false, search
from dmhub_adapter.mapping.plan import BindingPlan
from dmhub_adapter.sources.base import Account, Inbound, Source

logger = logging.getLogger(__name__)

#: (source, account) pairs already warned about an unenforced binding in this container
_warned: set[tuple[str, str, str]] = set()


def _text(value: Any) -> str | None:
    """A scalar as comparable text (``10001`` and ``"10001"`` are the same shop); else None."""
    if value is None or value == "" or isinstance(value, (dict, list, bool)):
        return None
    try:
        return converters.to_string(value, None)
    except converters.ConversionError:
        return None


def check_account_binding(account: Account, inbound: Inbound, *, log: Any = None) -> None:
    """Raise :class:`Forbidden` when a message of ``inbound`` belongs to another account
    (every binding of the mapping is checked)."""
    for binding in account.mapping.account_bindings():
        _check_binding(account, inbound, binding, log or logger)


def _check_binding(account: Account, inbound: Inbound, binding: BindingPlan, log: Any) -> None:
    expected = _text((account.secret or {}).get(binding.secret))
    if expected is None:
        if (account.source, account.name, binding.secret) not in _warned:
            _warned.add((account.source, account.name, binding.secret))
            log.warning(
                "account binding not enforced: the secret has no field %r", binding.secret,
                extra={"source": account.source, "account": account.name},
            )
        return
    for message in inbound.messages:
        try:
            decoded = decode_message(account.mapping, message)
        except MappingError:
            decoded = message  # the mapping reports it as unmapped; the binding reads what it can
        try:
            if binding._when is not None and is_false(search(binding._when, decoded)):
                continue
            value = _text(search(binding._compiled, decoded))
        except JMESPathError:
            value = None
        if value != expected:
            raise Forbidden(f"the payload belongs to another account: its {binding.path!r} is not this "
                            f"account's {binding.secret!r}")


#: option names under which a mapping sets its source's body cap (generic, built-in adapters)
_BODY_CAP_OPTIONS = ("maxBodyBytes", "max_body_bytes")


def source_body_cap(source: Source) -> int | None:
    """The body cap the source decides, if it decides one: an adapter's ``max_body_bytes``
    attribute, else its mapping's option. The pipeline applies it instead of the global
    ``MAX_BODY_BYTES``, so a source documented for 1 MiB (Taobao) gets 1 MiB and one capped
    lower is refused before its secret is read."""
    candidates = [getattr(source, "max_body_bytes", None),
                  *(source.mapping.options.get(name) for name in _BODY_CAP_OPTIONS)]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
