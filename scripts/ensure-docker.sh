#!/usr/bin/env bash
# Make sure a Docker engine plus the tools the tests use (docker-compose v1,
# docker-registry, busybox-static) and the deploy front's HAProxy (its image is
# built from the host's package: agent/deploy/front_image.py) are present and
# dockerd answers.
# Idempotent and silent when everything is already fine.
#
# Why not a system service: CI machines and containers here have no systemd,
# so we start dockerd ourselves in the background.
set -euo pipefail

LOG=/var/log/seamless-dockerd.log
WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-30}

say() { echo "ensure-docker: $*" >&2; }

engine_up() { docker info >/dev/null 2>&1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Fast path: engine reachable and every helper tool present -> nothing to do.
missing_pkgs=()
command -v docker-compose >/dev/null 2>&1 || missing_pkgs+=(docker-compose)
command -v docker-registry >/dev/null 2>&1 || missing_pkgs+=(docker-registry)
# busybox-static specifically: the base image needs a *static* busybox.
dpkg -s busybox-static >/dev/null 2>&1 || missing_pkgs+=(busybox-static)
dpkg -s haproxy >/dev/null 2>&1 || missing_pkgs+=(haproxy)

if command -v docker >/dev/null 2>&1 && engine_up && [ ${#missing_pkgs[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    missing_pkgs=(docker.io "${missing_pkgs[@]}")
fi

if [ ${#missing_pkgs[@]} -gt 0 ]; then
    if ! is_root; then
        say "missing packages: ${missing_pkgs[*]} (run as root, or: sudo apt-get install ${missing_pkgs[*]})"
        exit 1
    fi
    say "installing ${missing_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # With recommends, as checked on these machines (iptables, cgroup helpers...).
    apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null
fi

if engine_up; then
    exit 0
fi

# The engine is installed but not answering: start it unless it is already
# starting (a dockerd process exists but its socket is not ready yet).
if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ]; then
    # A remote/custom engine is configured: starting a local dockerd would not help.
    say "DOCKER_HOST=$DOCKER_HOST is unreachable"
    exit 1
fi
if ! pgrep -x dockerd >/dev/null 2>&1; then
    if ! is_root; then
        say "dockerd is not running and we are not root; start it (or add yourself to the docker group)"
        exit 1
    fi
    # setsid: own session, so dockerd outlives make/CI job process groups.
    # dockerd starts its own containerd when none runs as a service.
    say "starting dockerd (log: $LOG)"
    setsid -f dockerd >>"$LOG" 2>&1 </dev/null
fi

for _ in $(seq 1 "$WAIT_SECONDS"); do
    if engine_up; then
        exit 0
    fi
    sleep 1
done

say "docker engine still unreachable after ${WAIT_SECONDS}s; last lines of $LOG:"
tail -n 20 "$LOG" >&2 2>/dev/null || true
exit 1
