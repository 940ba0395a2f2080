"""WeChat official-account message crypto, under its historical name: the scheme is shared with
WeCom and lives in :mod:`dmhub_adapter.sources.msgcrypt` (one implementation, re-exported here)."""

from dmhub_adapter.sources.msgcrypt import (
    PAD_BLOCK,
    RANDOM_PREFIX,
    AppIdMismatch,
    DecryptError,
    InvalidKey,
    WeChatCryptoError,
    aes_key,
    check_signature,
    decrypt,
    decrypt_with_any,
    encrypt,
    pad,
    sign,
    unpad,
)

__all__ = [
    "PAD_BLOCK",
    "RANDOM_PREFIX",
    "AppIdMismatch",
    "DecryptError",
    "InvalidKey",
    "WeChatCryptoError",
    "aes_key",
    "check_signature",
    "decrypt",
    "decrypt_with_any",
    "encrypt",
    "pad",
    "sign",
    "unpad",
]
