"""Sortable unique identifiers: a ULID (48-bit ms timestamp + 80 random bits, Crockford base32).

Sorting ids sorts by creation time, which keeps listings and B-tree inserts cheap. Within one
millisecond the random part is incremented, so ids made by one process are strictly increasing.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last_ms = -1
_last_random = 0

SESSION_PREFIX = "IND-"
AGENT_PREFIX = "AGENT-"
TASK_PREFIX = "TASK-"
JOB_PREFIX = "FTJ-"
USER_PREFIX = "USR-"
API_KEY_PREFIX = "KEY-"
EVALUATION_PREFIX = "EVAL-"
PROMOTION_PREFIX = "PROMO-"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def ulid() -> str:
    """A 26-character, lexicographically time-ordered, unique string."""
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_random = (_last_random + 1) % (1 << _RANDOM_BITS)
        else:
            _last_random = secrets.randbits(_RANDOM_BITS - 1)  # headroom for increments
        _last_ms = now_ms
        return _encode(now_ms, 10) + _encode(_last_random, 16)


def new_session_id() -> str:
    return SESSION_PREFIX + ulid()


def new_agent_id() -> str:
    return AGENT_PREFIX + ulid()


def new_task_id() -> str:
    return TASK_PREFIX + ulid()


def new_job_id() -> str:
    return JOB_PREFIX + ulid()


def new_user_id() -> str:
    return USER_PREFIX + ulid()


def new_api_key_id() -> str:
    return API_KEY_PREFIX + ulid()


def new_evaluation_id() -> str:
    return EVALUATION_PREFIX + ulid()


def new_promotion_id() -> str:
    return PROMOTION_PREFIX + ulid()
