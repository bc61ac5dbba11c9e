"""Signed deliveries: HMAC-SHA256 over `"<timestamp>.<body>"`, sent with the timestamp.

Used for webhook deliveries (the endpoint's secret) and EAP task assignments (the SHA-256 of the
agent's token, which the agent can compute and the platform keeps). Signing the timestamp with
the body lets a receiver refuse a replay: an old timestamp, or a changed one, fails.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_SCHEME = "sha256="
REPLAY_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of the HMAC of `"<timestamp>.<body>"` with `secret`."""
    message = str(timestamp).encode() + b"." + body
    return SIGNATURE_SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_valid(
    secret: str,
    timestamp: str,
    body: bytes,
    presented: str,
    now: float,
    tolerance_seconds: int = REPLAY_TOLERANCE_SECONDS,
) -> bool:
    """Whether `presented` signs `body` at `timestamp`, and that time is within the tolerance."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, sent_at, body), presented)
