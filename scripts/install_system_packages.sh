#!/usr/bin/env bash
# Installs the Debian packages the platform's tests and tenant runtimes use, when missing, with
# apt-get when run as root on a Debian-like system; otherwise says what to run. Never fails the
# caller.
# - bubblewrap (`bwrap`, the tenant runtimes' sandbox) and iptables (the firewall rules per
#   tenant user: resources/runtime_host/network_rules.py): without them, `indorch runtime start`
#   refuses (and says what is lost) unless INDORCH_RUNTIME_ALLOW_UNSANDBOXED=1;
# - prometheus (the real Prometheus the multi-process test scrapes /metrics with and evaluates
#   deploy/grafana/'s dashboard against: tests/integration/deploy/test_production_sessions.py).
set -uo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [[ ${#missing[@]} == 0 ]]; then
    exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${missing[*]}"
    install() {
        # --no-install-recommends: prometheus alone, not its node exporter and web assets.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null 2>&1
    }
    if install || { apt-get update -qq >/dev/null 2>&1 && install; }; then
        echo "bootstrap: ${missing[*]} installed"
        exit 0
    fi
    echo "bootstrap: WARNING: apt-get could not install ${missing[*]}" >&2
fi
echo "bootstrap: WARNING: ${missing[*]} missing: tenant runtimes cannot be sandboxed without" >&2
echo "bootstrap: bubblewrap and iptables; the multi-process test needs prometheus." >&2
echo "bootstrap: install as root: apt-get install ${missing[*]} (Debian/Ubuntu)," >&2
echo "bootstrap: dnf install ${missing[*]} (Fedora), apk add ${missing[*]} (Alpine)." >&2
exit 0
