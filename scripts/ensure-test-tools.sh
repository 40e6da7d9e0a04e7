#!/usr/bin/env bash
# `make test`: tools the tests use beyond the Docker set (scripts/ensure-docker.sh):
# systemd-analyze (Debian's systemd package) checks the unit `install-service` writes.
# Idempotent and silent when everything is there. Installing the package does not boot
# systemd: it only brings its tools.
set -euo pipefail

command -v systemd-analyze >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-test-tools: systemd-analyze is missing (sudo apt-get install systemd)" >&2
    exit 1
fi
echo "ensure-test-tools: installing systemd (for systemd-analyze)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends systemd >/dev/null
