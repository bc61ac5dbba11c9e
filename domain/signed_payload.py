"""Signed deliveries: HMAC-SHA256 over `"<timestamp>.<body>"`, sent with the timestamp.

Used for webhook deliveries (the endpoint's secret) and EAP task assignments (the SHA-256 of the
agent's token, which the agent can compute and the platform keeps). Signing the timestamp with
the body lets a receiver refuse a replay: an old timestamp, or a changed one, fails (receivers
check it themselves; the README shows how).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_SCHEME = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of the HMAC of `"<timestamp>.<body>"` with `secret`."""
    message = str(timestamp).encode() + b"." + body
    return SIGNATURE_SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
