"""The signature on every webhook request, and how a receiver checks it.

``X-Mcu-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``: the time is signed
with the body, so a receiver that refuses old times (:data:`DEFAULT_TOLERANCE`) and events it
has seen (by their ``id``) cannot be fed a recorded request again. Pure functions over bytes;
the standard library's ``hmac`` does the cryptography.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "sign",
    "signature_header",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Mcu-Signature"
DEFAULT_TOLERANCE = 300
"Seconds a receiver should accept a signature's time away from its own clock (docs/webhooks.md)."
_MAX_HEADER_CHARS = 512
"A longer header is no signature of ours; refused before it is split."


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    return hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Mcu-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify_signature(
    secret: bytes, header: str, body: bytes, now: float, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a time within ``tolerance`` seconds
    of ``now``. One matching ``v1`` entry is enough (the format leaves room for a sender to sign
    with two secrets while one replaces the other); a malformed header is simply not valid."""
    if len(header) > _MAX_HEADER_CHARS:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    # Every candidate is compared, in constant time each, whatever matched before.
    return sum(hmac.compare_digest(expected, c) for c in candidates if c.isascii()) > 0
