#!/usr/bin/env bash
# Installs bubblewrap (Debian package `bubblewrap`), the sandbox of the tenants' managed runtimes,
# when it is missing: with apt-get, when run as root on a Debian-like system. Otherwise it says
# what to run. Never fails the caller: without bubblewrap, `indorch runtime start` refuses (and
# says what is lost) unless INDORCH_RUNTIME_ALLOW_UNSANDBOXED=1.
set -uo pipefail

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing bubblewrap (the tenant runtimes' sandbox)"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; then
        echo "bootstrap: bubblewrap installed ($(bwrap --version))"
        exit 0
    fi
    echo "bootstrap: WARNING: apt-get could not install bubblewrap" >&2
fi
echo "bootstrap: WARNING: bubblewrap (bwrap) is missing: tenant runtimes cannot be sandboxed." >&2
echo "bootstrap: install it as root: apt-get install bubblewrap (Debian/Ubuntu)," >&2
echo "bootstrap: dnf install bubblewrap (Fedora), apk add bubblewrap (Alpine)." >&2
exit 0
