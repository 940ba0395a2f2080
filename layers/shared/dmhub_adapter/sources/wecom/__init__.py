"""WeCom (企业微信) customer-contact callbacks; the protocol is documented in
:mod:`dmhub_adapter.sources.wecom.adapter`, the crypto shared with WeChat in
:mod:`dmhub_adapter.sources.msgcrypt`."""

from dmhub_adapter.sources.wecom.adapter import WeComSource, build, check_config
from dmhub_adapter.sources.wecom.signing import handshake_query, sign_request, signed_push

__all__ = ["WeComSource", "build", "check_config", "handshake_query", "sign_request", "signed_push"]
