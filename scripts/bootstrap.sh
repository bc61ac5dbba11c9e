#!/usr/bin/env bash
# Idempotent set-up of the development environment.
#
# - creates .venv (python3.11, or python3 if it is >= 3.11) when it is missing;
# - runs `pip install -e '.[dev]'` only when pyproject.toml changed since the last install
#   (the sha256 of pyproject.toml is kept in .venv/.bootstrap-stamp).
# - installs bubblewrap, iptables (the tenant runtimes' sandbox) and prometheus (the
#   multi-process test) when missing: scripts/install_system_packages.sh.
# Fast (well under a second) when nothing changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV=".venv"
STAMP="$VENV/.bootstrap-stamp"

pick_python() {
    if command -v python3.11 >/dev/null 2>&1; then
        echo python3.11
        return
    fi
    if command -v python3 >/dev/null 2>&1 \
        && python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        echo python3
        return
    fi
    echo "bootstrap: need python3.11 (or python3 >= 3.11) on PATH" >&2
    exit 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    py="$(pick_python)"
    echo "bootstrap: creating $VENV with $py"
    "$py" -m venv "$VENV"
    rm -f "$STAMP"
fi

want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "bootstrap: pyproject.toml changed (or first install): pip install -e '.[dev]'"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    echo "$want" >"$STAMP"
    echo "bootstrap: installed"
else
    echo "bootstrap: $VENV up to date"
fi

# The tenant runtimes' sandbox, Prometheus (a check only, when they are there).
bash scripts/install_system_packages.sh
