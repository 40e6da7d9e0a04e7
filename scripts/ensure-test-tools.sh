#!/usr/bin/env bash
# `make test`: tools the tests use beyond the Docker set (scripts/ensure-docker.sh):
# systemd-analyze (Debian's systemd package) checks the unit `install-service` writes;
# tmux runs seamless-tui in a real terminal for the journey tests (tests/tui_terminal/);
# Debian's chromium is the browser the run-page tests drive with Playwright
# (tests/api/test_run_page_browser.py; Playwright never downloads a browser here).
# iproute2 (`ip netns`) and nsenter put the fault tests' second Docker engine in its own
# network namespace (tests/reliability/second_engine.py).
# Idempotent and silent when everything is there. Installing the package does not boot
# systemd: it only brings its tools.
set -euo pipefail

missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)  # ip netns: the second Docker engine of the fault tests
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-test-tools: missing ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "ensure-test-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
