"""Tencent's message crypto (``WXBizMsgCrypt``), shared by WeChat official accounts (safe and
compatible mode, :mod:`dmhub_adapter.sources.wechat`) and WeCom callbacks
(:mod:`dmhub_adapter.sources.wecom`): signatures and the AES scheme.

Pure functions, no I/O. The scheme:

- ``signature``      = sha1 of the sorted, concatenated ``[token, timestamp, nonce]`` (lower hex);
- ``msg_signature``  = the same over ``[token, timestamp, nonce, Encrypt]``;
- AES key            = base64-decode(EncodingAESKey + "=") → 32 bytes; AES-256-CBC, IV = key[:16];
- plaintext          = 16 random bytes ‖ uint32 big-endian length ‖ message ‖ receive id,
                       PKCS#7-padded to a multiple of **32** bytes (not the AES block size).
                       The receive id is the official account's AppID, or the WeCom CorpID
                       (``app_id`` below names either).

Decryption is strict where common SDKs are lax: padding bytes are all checked, the length
field is bounded, and the trailing appid is compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: WeChat pads to 32 bytes, so a generic 16-byte PKCS#7 unpadder rejects valid messages.
PAD_BLOCK = 32
RANDOM_PREFIX = 16
_HEADER = RANDOM_PREFIX + 4
_ENCODING_AES_KEY_RE = re.compile(r"^[A-Za-z0-9]{43}$")


class WeChatCryptoError(ValueError):
    """Base class of crypto failures; ``str()`` is safe to show (no key material)."""


class InvalidKey(WeChatCryptoError):
    """The configured EncodingAESKey is not 43 letters or digits."""


class DecryptError(WeChatCryptoError):
    """``Encrypt`` could not be decrypted: bad base64, length, padding or length field."""


class AppIdMismatch(DecryptError):
    """The receive id (AppID / CorpID) at the end of the plaintext is not this account's."""


# --------------------------------------------------------------------------------------------
# Signatures


def sign(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    """WeChat's signature: sha1 over the sorted, joined strings (add ``Encrypt`` for msg_signature)."""
    joined = "".join(sorted([token, timestamp, nonce, *extra]))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


def check_signature(signature: str | None, token: str, timestamp: str, nonce: str, *extra: str) -> bool:
    """Constant-time check of a received signature. An empty token is refused outright: with it
    the signature is computable by anyone who sees a timestamp and a nonce."""
    if not token:
        raise ValueError("the WeChat token is empty; refusing to verify with it")
    if not signature:
        return False
    expected = sign(token, timestamp, nonce, *extra).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().lower().encode("utf-8", "replace"))


# --------------------------------------------------------------------------------------------
# AES


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-character EncodingAESKey."""
    if not isinstance(encoding_aes_key, str) or not _ENCODING_AES_KEY_RE.match(encoding_aes_key):
        raise InvalidKey("EncodingAESKey must be exactly 43 letters or digits")
    # 43 base64 characters carry 258 bits; Python's decoder drops the 2 spare bits as WeChat does.
    return base64.b64decode(encoding_aes_key + "=")


def pad(data: bytes) -> bytes:
    """PKCS#7 padding to WeChat's 32-byte block (not AES's 16)."""
    amount = PAD_BLOCK - len(data) % PAD_BLOCK
    return data + bytes([amount]) * amount


def unpad(data: bytes) -> bytes:
    """Remove WeChat's 32-byte PKCS#7 padding; malformed padding is a :class:`DecryptError`."""
    if not data:
        raise DecryptError("decrypted data is empty")
    amount = data[-1]
    if not 1 <= amount <= PAD_BLOCK or amount > len(data):
        raise DecryptError("bad padding in the decrypted data")
    if not hmac.compare_digest(data[-amount:], bytes([amount]) * amount):
        raise DecryptError("bad padding in the decrypted data")
    return data[:-amount]


def _cipher(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt(message: str | bytes, encoding_aes_key: str, app_id: str, random16: bytes | str | None = None) -> str:
    """The ``Encrypt`` text for a message (what WeChat sends, or what a reply carries)."""
    key = aes_key(encoding_aes_key)
    body = message.encode("utf-8") if isinstance(message, str) else message
    prefix = secrets.token_bytes(RANDOM_PREFIX) if random16 is None else (
        random16.encode("utf-8") if isinstance(random16, str) else random16
    )
    if len(prefix) != RANDOM_PREFIX:
        raise ValueError(f"random16 must be {RANDOM_PREFIX} bytes, got {len(prefix)}")
    plain = pad(prefix + len(body).to_bytes(4, "big") + body + app_id.encode("utf-8"))
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def decrypt(encrypted: str, encoding_aes_key: str, app_id: str) -> bytes:
    """The message inside ``Encrypt`` (bytes, usually UTF-8 XML); checks the appid tail.

    Raises :class:`DecryptError` (or :class:`AppIdMismatch`) with a reason safe to return.
    """
    key = aes_key(encoding_aes_key)
    try:
        data = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError) as exc:
        hint = " (a '+' turned into a space?)" if " " in encrypted else ""
        raise DecryptError(f"Encrypt is not valid base64{hint}") from exc
    if not data or len(data) % 16:
        raise DecryptError(f"Encrypt decodes to {len(data)} bytes, not a non-empty multiple of 16")
    decryptor = _cipher(key).decryptor()
    plain = unpad(decryptor.update(data) + decryptor.finalize())
    if len(plain) < _HEADER:
        raise DecryptError("decrypted data is shorter than its header")
    length = int.from_bytes(plain[RANDOM_PREFIX:_HEADER], "big")
    if _HEADER + length > len(plain):
        raise DecryptError("the message length field exceeds the decrypted data")
    message, tail = plain[_HEADER : _HEADER + length], plain[_HEADER + length :]
    if not hmac.compare_digest(tail, app_id.encode("utf-8")):
        raise AppIdMismatch("the appid inside the encrypted message does not match this account's appId")
    return message


def decrypt_with_any(encrypted: str, encoding_aes_keys: list[str], app_id: str) -> tuple[bytes, int]:
    """Try each key in order (current, then previous during a rotation); returns the message and
    the index of the key that worked. The first key's error is raised when none works."""
    if not encoding_aes_keys:
        raise InvalidKey("no EncodingAESKey configured")
    first: DecryptError | None = None
    for index, key in enumerate(encoding_aes_keys):
        try:
            return decrypt(encrypted, key, app_id), index
        except DecryptError as exc:
            first = first or exc
    assert first is not None
    raise first
