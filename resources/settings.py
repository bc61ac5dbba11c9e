"""Where configuration comes from: the environment, else the embedded defaults. The one place.

- ``DATABASE_URL``: the application database; default a SQLite file in the state directory.
- ``INDORCH_STATE_DIR``: the state directory (local databases, the dev ``DAGSTER_HOME``);
  default ``<project root>/.state``, created on demand.
- ``INDORCH_WORKSPACES_DIR``: where sessions' worktrees and repository mirrors live, per tenant;
  default ``<state dir>/workspaces``.
- ``REDIS_URL``: Redis, optional on the embedded default (``None`` means "run without it").
- ``INDORCH_PROVIDER_BASE_URL`` / ``INDORCH_PROVIDER_API_KEY``: the OpenAI-compatible
  fine-tuning and inference provider (the stand-in's ``.../v1`` in the demo and tests).
- ``INDORCH_APP_DATABASE_PASSWORD``: on PostgreSQL the application logs in as the role
  ``indorch_app`` (on ``DATABASE_URL``'s server and database); its password, when the server asks.
- ``INDORCH_API_MAX_BODY_BYTES``: the largest request body the HTTP API reads (default 1 MiB).
- ``INDORCH_API_RATE_LIMIT`` / ``INDORCH_API_RATE_WINDOW_SECONDS``: requests a tenant may make
  per window (default 600 per 60 s; ``0`` turns the limit off).
- ``INDORCH_DAGSTER_WEBSERVER_URL``: the Dagster webserver (``http://127.0.0.1:3000`` under
  ``dagster dev`` and ``indorch demo``): when set, a submit launches its tenant's wave through it
  at once instead of waiting for the dispatch sensor's tick (``services.wave_trigger``); unset,
  the sensor alone dispatches.
- ``INDORCH_ALLOW_PLAIN_HTTP_AGENTS``: ``1`` lets agents be registered on plain http off this
  host (by default only https, or http to loopback: a password sent in clear crosses no wire).

Assets, sensors and resources never read the environment themselves (STYLE.md rule 4).
"""

from __future__ import annotations

import os
from pathlib import Path

from domain.errors import InvalidSetting

DATABASE_URL_VAR = "DATABASE_URL"
STATE_DIR_VAR = "INDORCH_STATE_DIR"
REDIS_URL_VAR = "REDIS_URL"
PROVIDER_BASE_URL_VAR = "INDORCH_PROVIDER_BASE_URL"
PROVIDER_API_KEY_VAR = "INDORCH_PROVIDER_API_KEY"
WORKSPACES_DIR_VAR = "INDORCH_WORKSPACES_DIR"
ALLOW_PLAIN_HTTP_AGENTS_VAR = "INDORCH_ALLOW_PLAIN_HTTP_AGENTS"
ALLOW_PRIVATE_WEBHOOKS_VAR = "INDORCH_ALLOW_PRIVATE_WEBHOOKS"
APP_DATABASE_PASSWORD_VAR = "INDORCH_APP_DATABASE_PASSWORD"
API_MAX_BODY_BYTES_VAR = "INDORCH_API_MAX_BODY_BYTES"
API_RATE_LIMIT_VAR = "INDORCH_API_RATE_LIMIT"
API_RATE_WINDOW_VAR = "INDORCH_API_RATE_WINDOW_SECONDS"
DEFAULT_API_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_API_RATE_LIMIT = 600
DEFAULT_API_RATE_WINDOW_SECONDS = 60
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATABASE_FILE_NAME = "indorch.db"


def _env(name: str) -> str | None:
    """The variable's value; unset and empty both mean "not configured"."""
    return os.environ.get(name) or None


def state_dir() -> Path:
    """The directory for local state, created if it does not exist yet (`InvalidSetting` when
    it cannot be: a file is in the way, no permission)."""
    configured = _env(STATE_DIR_VAR)
    path = Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / ".state"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        why = "is not a directory" if path.exists() else f"cannot be created: {error.strerror}"
        raise InvalidSetting(STATE_DIR_VAR, f"{path} {why}") from None
    return path


def workspaces_dir() -> Path:
    """The root of the sessions' workspaces (created on first use by whoever writes there)."""
    configured = _env(WORKSPACES_DIR_VAR)
    return Path(configured).expanduser().resolve() if configured else state_dir() / "workspaces"


def database_url_is_configured() -> bool:
    """True when ``DATABASE_URL`` names the database (production), False on the default."""
    return _env(DATABASE_URL_VAR) is not None


def database_url() -> str:
    """The URL to open, checked and normalized (`postgres://` is PostgreSQL on psycopg 3); an
    unusable one is `InvalidSetting` naming the variable. SQLAlchemy is imported here, not at
    start-up: only commands that open the database call this."""
    configured = _env(DATABASE_URL_VAR)
    if configured is None:
        return f"sqlite:///{state_dir() / DATABASE_FILE_NAME}"
    from resources.database.engine import normalized_url

    return normalized_url(configured, DATABASE_URL_VAR).render_as_string(hide_password=False)


def redis_url() -> str | None:
    return _env(REDIS_URL_VAR)


DAGSTER_WEBSERVER_URL_VAR = "INDORCH_DAGSTER_WEBSERVER_URL"


def dagster_webserver_url() -> str | None:
    """The Dagster webserver submits launch waves through; None: none (the sensor dispatches)."""
    configured = _env(DAGSTER_WEBSERVER_URL_VAR)
    return configured.rstrip("/") if configured else None


DATASET_DIR_VAR = "INDORCH_DATASET_DIR"


def dataset_dir() -> Path:
    """Where training datasets are written; default ``<state dir>/datasets``."""
    configured = _env(DATASET_DIR_VAR)
    return Path(configured).expanduser().resolve() if configured else state_dir() / "datasets"


def provider_base_url() -> str | None:
    """The provider's API base URL (``http(s)://host[:port]/v1``); `InvalidSetting` when it is
    not an HTTP URL."""
    configured = _env(PROVIDER_BASE_URL_VAR)
    if configured is not None and not configured.startswith(("http://", "https://")):
        raise InvalidSetting(PROVIDER_BASE_URL_VAR, "must be an http:// or https:// URL")
    return configured


def provider_api_key_is_configured() -> bool:
    """True when ``INDORCH_PROVIDER_API_KEY`` is set; the key itself is bound as an `EnvVar`,
    so it is read only where the resource runs and never lands in a snapshot."""
    return _env(PROVIDER_API_KEY_VAR) is not None


def allow_plain_http_agents() -> bool:
    """Whether agents may be registered on plain http to hosts other than this one."""
    value = (_env(ALLOW_PLAIN_HTTP_AGENTS_VAR) or "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise InvalidSetting(ALLOW_PLAIN_HTTP_AGENTS_VAR, "use 1 to allow, 0 (or unset) to refuse")


def app_database_password() -> str | None:
    return _env(APP_DATABASE_PASSWORD_VAR)


HISTORY_RETENTION_DAYS_VAR = "INDORCH_HISTORY_RETENTION_DAYS"
RUN_RETENTION_DAYS_VAR = "INDORCH_RUN_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90


def retention_days(variable: str) -> int:
    """Days of history kept (``INDORCH_HISTORY_RETENTION_DAYS`` for our session history,
    ``INDORCH_RUN_RETENTION_DAYS`` for Dagster's runs); a whole number of at least 1."""
    configured = _env(variable)
    if configured is None:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(configured.strip())
    except ValueError:
        raise InvalidSetting(variable, "must be a whole number of days") from None
    if days < 1:
        raise InvalidSetting(variable, "must be at least 1 day")
    return days


def _whole_number(name: str, default: int, minimum: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidSetting(name, f"must be a whole number (at least {minimum})") from None
    if value < minimum:
        raise InvalidSetting(name, f"must be at least {minimum}")
    return value


def api_max_body_bytes() -> int:
    return _whole_number(API_MAX_BODY_BYTES_VAR, DEFAULT_API_MAX_BODY_BYTES, 1)


def api_rate_limit() -> int:
    """Requests per tenant per window; 0: no limit."""
    return _whole_number(API_RATE_LIMIT_VAR, DEFAULT_API_RATE_LIMIT, 0)


def api_rate_window_seconds() -> int:
    return _whole_number(API_RATE_WINDOW_VAR, DEFAULT_API_RATE_WINDOW_SECONDS, 1)


def allow_private_webhooks() -> bool:
    """Whether webhooks may go to loopback and private addresses (`domain.webhook_address`)."""
    value = (_env(ALLOW_PRIVATE_WEBHOOKS_VAR) or "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise InvalidSetting(ALLOW_PRIVATE_WEBHOOKS_VAR, "use 1 to allow, 0 (or unset) to refuse")
