#!/usr/bin/env bash
# Installs what the tenants' managed runtimes are confined with, when it is missing: bubblewrap
# (Debian package `bubblewrap`, the sandbox) and iptables (Debian package `iptables`, the
# firewall rules per tenant user: resources/runtime_host/network_rules.py); with apt-get, when
# run as root on a Debian-like system. Otherwise it says what to run. Never fails the caller:
# without them, `indorch runtime start` refuses (and says what is lost) unless
# INDORCH_RUNTIME_ALLOW_UNSANDBOXED=1.
set -uo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if [[ ${#missing[@]} == 0 ]]; then
    exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${missing[*]} (the tenant runtimes' sandbox and firewall rules)"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; }; then
        echo "bootstrap: ${missing[*]} installed"
        exit 0
    fi
    echo "bootstrap: WARNING: apt-get could not install ${missing[*]}" >&2
fi
echo "bootstrap: WARNING: ${missing[*]} missing: tenant runtimes cannot be sandboxed." >&2
echo "bootstrap: install as root: apt-get install ${missing[*]} (Debian/Ubuntu)," >&2
echo "bootstrap: dnf install ${missing[*]} (Fedora), apk add ${missing[*]} (Alpine)." >&2
exit 0
