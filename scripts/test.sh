#!/usr/bin/env bash
# The project's test command (`make test`): bootstrap, lint, then pytest with any extra args.
#
#   bash scripts/test.sh [pytest args...]
#
# Under CI=true: PostgreSQL and Redis are started if they are down, a fresh PostgreSQL database is
# created for this run (and dropped at exit), TEST_DATABASE_URL / TEST_REDIS_URL are exported, and
# INDORCH_REQUIRE_SERVICES=1 turns every skipped service test into a failure.
# Outside CI: if TEST_DATABASE_URL is unset and PostgreSQL answers on 127.0.0.1:5432, a fresh
# database is used the same way; TEST_REDIS_URL is set if Redis answers. Otherwise the service
# tests skip and say why.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

START_SECONDS=$SECONDS
PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
SERVICE_WAIT_SECONDS=${SERVICE_WAIT_SECONDS:-30}
CREATED_DB=""

log() { echo "test.sh: $*"; }

cleanup() {
    local status=$?
    if [[ -n "$CREATED_DB" ]]; then
        if dropdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" --if-exists --force "$CREATED_DB"; then
            log "dropped database $CREATED_DB"
        else
            log "WARNING: could not drop database $CREATED_DB" >&2
        fi
    fi
    log "elapsed $((SECONDS - START_SECONDS))s (exit $status)"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

is_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }

pg_up() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }

redis_up() {
    command -v redis-cli >/dev/null 2>&1 \
        && [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]
}

wait_for() { # wait_for <name> <check-function>
    local name=$1 check=$2 deadline=$((SECONDS + SERVICE_WAIT_SECONDS))
    until "$check"; do
        if ((SECONDS >= deadline)); then
            log "ERROR: $name did not become ready within ${SERVICE_WAIT_SECONDS}s" >&2
            return 1
        fi
        sleep 0.5
    done
    log "$name is ready"
}

start_services() {
    if ! pg_up; then
        local version
        version="$(ls /etc/postgresql)"
        log "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    if ! redis_up; then
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    fi
    wait_for "PostgreSQL on $PG_HOST:$PG_PORT" pg_up
    wait_for "Redis on $REDIS_HOST:$REDIS_PORT" redis_up
}

create_database() { # create_database <prefix>; sets CREATED_DB and TEST_DATABASE_URL
    local name
    name="$1_$(date +%Y%m%d%H%M%S)_$$"
    createdb -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$name" || return 1
    CREATED_DB="$name"
    export TEST_DATABASE_URL="postgresql+psycopg://$PG_USER@$PG_HOST:$PG_PORT/$name"
    log "using fresh database $name"
}

bash scripts/bootstrap.sh
bash scripts/install_opencode.sh >/dev/null

lint_status=0
log "ruff format --check"
.venv/bin/ruff format --check . || lint_status=1
log "ruff check"
.venv/bin/ruff check . || lint_status=1
log "lint-imports (the layer contracts in pyproject.toml)"
.venv/bin/lint-imports --no-cache || lint_status=1

if is_ci; then
    start_services
    create_database indorch_ci
    export TEST_REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/15"
    export INDORCH_REQUIRE_SERVICES=1
else
    if [[ -z "${TEST_DATABASE_URL:-}" ]]; then
        if pg_up && command -v createdb >/dev/null 2>&1; then
            create_database indorch_dev || log "could not create a database; PostgreSQL tests skip"
        else
            log "PostgreSQL not reachable on $PG_HOST:$PG_PORT; PostgreSQL tests skip"
        fi
    fi
    if [[ -z "${TEST_REDIS_URL:-}" ]]; then
        if redis_up; then
            export TEST_REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT/15"
        else
            log "Redis not reachable on $REDIS_HOST:$REDIS_PORT; Redis tests skip"
        fi
    fi
fi

# The tests on two processes (pytest-xdist) by default: a third of the suite's wall time is
# spent waiting for servers, runtimes and sessions, which the other process fills with its work.
# A module's tests stay on one process; the tests that take the whole machine (managed runtimes,
# the demo, the chaos suite) all on one, one after the other (tests/conftest.py: xdist_group_of).
# PYTEST_WORKERS=1 runs them in this process, one at a time.
PYTEST_WORKERS=${PYTEST_WORKERS:-2}
parallel=()
if ((PYTEST_WORKERS > 1)); then
    parallel=(-n "$PYTEST_WORKERS" --dist loadgroup)
fi
log "pytest ${parallel[*]} $*"
test_status=0
.venv/bin/pytest "${parallel[@]}" "$@" || test_status=$?

if ((lint_status != 0)); then
    log "FAILED: lint (ruff format --check / ruff check / lint-imports) reported problems" >&2
    exit 1
fi
exit "$test_status"
