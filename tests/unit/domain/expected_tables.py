"""The three state-machine tables, transcribed by hand from MISSION.md.

Kept apart from the production tables on purpose: the tests compare the code against these, so a
typo in `domain/` cannot also become the expectation.
"""

from __future__ import annotations

SESSION_TABLE: dict[str, set[str]] = {
    "PENDING": {"QUEUED", "RUNNING", "CANCELLED", "FAILED"},
    "QUEUED": {"PENDING", "RUNNING", "CANCELLED", "FAILED"},
    "RUNNING": {
        "COMPLETED",
        "PARTIALLY_COMPLETED",
        "FAILED",
        "TIMEOUT",
        "PAUSED",
        "STOPPED",
        "DEGRADED",
        "ORPHANED",
    },
    "PAUSED": {"RUNNING", "STOPPED", "CANCELLED"},
    "DEGRADED": {"RUNNING", "FAILED", "COMPLETED", "STOPPED"},
    "FAILED": {"PENDING"},  # retry
    "TIMEOUT": {"PENDING"},  # retry
    "ORPHANED": {"PENDING"},  # retry
    "COMPLETED": set(),
    "PARTIALLY_COMPLETED": set(),
    "STOPPED": set(),
    "CANCELLED": set(),
}
SESSION_FINAL = {"COMPLETED", "PARTIALLY_COMPLETED", "STOPPED", "CANCELLED"}
SESSION_RETRYABLE = {"FAILED", "TIMEOUT", "ORPHANED"}

TASK_TABLE: dict[str, set[str]] = {
    "PENDING": {"READY", "ASSIGNED", "CANCELLED"},
    "READY": {"ASSIGNED", "CANCELLED"},
    "ASSIGNED": {"IN_PROGRESS", "CANCELLED"},
    "IN_PROGRESS": {"COMPLETED", "FAILED", "BLOCKED", "PAUSED"},
    "BLOCKED": {"IN_PROGRESS", "CANCELLED"},
    "PAUSED": {"IN_PROGRESS", "CANCELLED"},
    "COMPLETED": set(),
    "FAILED": set(),
    "CANCELLED": set(),
    "SKIPPED": set(),
}
TASK_FINAL = {"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"}

FINE_TUNING_TABLE: dict[str, set[str]] = {
    "PENDING": {"QUEUED", "CANCELLED"},
    "QUEUED": {"RUNNING", "CANCELLED", "FAILED"},
    "RUNNING": {"EVALUATING", "COMPLETED", "FAILED", "CANCELLED"},
    "EVALUATING": {"COMPLETED", "FAILED"},
    "FAILED": {"PENDING"},  # retry
    "CANCELLED": {"PENDING"},  # retry
    "COMPLETED": set(),
}
FINE_TUNING_FINAL = {"COMPLETED"}
