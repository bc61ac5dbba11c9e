#!/usr/bin/env bash
# The dagster CLI against this project's instance, from the project root:
#
#   bash scripts/dagster.sh dev                                   # webserver + daemon
#   bash scripts/dagster.sh definitions validate -w workspace.yaml
#
# DAGSTER_HOME: when it is set, it is used as it is (production: a directory whose dagster.yaml is
# deploy/dagster.yaml). When it is unset, it becomes <state dir>/dagster,
# where the state dir is INDORCH_STATE_DIR or .state (as in resources/settings.py), and the
# development template dagster_instance/dagster.yaml is copied there on every call: the template
# is the truth, the copy is state.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ -z "${DAGSTER_HOME:-}" ]]; then
    state_dir="${INDORCH_STATE_DIR:-$ROOT/.state}"
    mkdir -p "$state_dir/dagster"
    DAGSTER_HOME="$(cd "$state_dir/dagster" && pwd)" # Dagster wants an absolute path
    export DAGSTER_HOME
    cp dagster_instance/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
elif [[ ! -f "$DAGSTER_HOME/dagster.yaml" ]]; then
    echo "dagster.sh: DAGSTER_HOME=$DAGSTER_HOME holds no dagster.yaml" >&2
    exit 1
fi

exec "$ROOT/.venv/bin/dagster" "$@"
