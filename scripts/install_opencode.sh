#!/usr/bin/env bash
# Install the real OpenCode server (npm package `opencode-ai`, pinned) into <project>/.tools/opencode.
#
#   bash scripts/install_opencode.sh          # prints the path of the `opencode` binary
#
# Idempotent: when `node_modules/.bin/opencode --version` already prints the pinned version the
# script returns at once. npm may warn about optional packages for other platforms (the package
# ships one binary per platform as optional dependencies); the check of the installed binary's
# version is what decides success.
# Override the pin with OPENCODE_VERSION=... only for experiments: the contract tests target it.
set -euo pipefail

OPENCODE_VERSION="${OPENCODE_VERSION:-1.18.33}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.tools/opencode"
BIN="$PREFIX/node_modules/.bin/opencode"

log() { echo "install_opencode: $*" >&2; }

installed_version() {
    [[ -x "$BIN" ]] || return 1
    "$BIN" --version 2>/dev/null | tr -d '[:space:]'
}

if [[ "$(installed_version || true)" == "$OPENCODE_VERSION" ]]; then
    echo "$BIN"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    log "ERROR: npm not found on PATH (install Node.js >= 18 with npm first)"
    exit 1
fi

log "installing opencode-ai@$OPENCODE_VERSION into ${PREFIX#"$ROOT"/}"
mkdir -p "$PREFIX"
# npm can exit non-zero over optional packages for other platforms; the version check decides.
npm install --prefix "$PREFIX" --no-audit --no-fund --save-exact --loglevel=error \
    "opencode-ai@$OPENCODE_VERSION" >&2 || log "npm reported problems; checking the binary"

have="$(installed_version || true)"
if [[ "$have" != "$OPENCODE_VERSION" ]]; then
    log "ERROR: expected opencode $OPENCODE_VERSION at $BIN, found '${have:-nothing}'"
    exit 1
fi
log "installed opencode $have"
echo "$BIN"
