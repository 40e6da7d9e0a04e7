#!/usr/bin/env bash
# Build the local Python stage image seamless/python:3 from Debian's packages:
# a debootstrap root filesystem (minbase + python3, pip, venv) turned into an image
# with `docker import` — nothing is pulled from a registry. Used by bench/real_service.py,
# not by `make test`. Cached: a no-op when the image exists (FORCE=1 rebuilds).
set -euo pipefail

IMAGE=${SEAMLESS_PYTHON_IMAGE:-seamless/python:3}
SUITE=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
LOCK=${TMPDIR:-/tmp}/seamless-python-image.lock

say() { echo "build-python-image: $*" >&2; }
image_exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; }

if [ "${FORCE:-0}" != 1 ] && image_exists; then
    exit 0
fi
exec 9>"$LOCK"
flock -w 900 9
if [ "${FORCE:-0}" != 1 ] && image_exists; then
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get install -y -qq debootstrap >/dev/null
fi
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/seamless-python-root.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
say "debootstrap $SUITE (minbase, python3) into $ROOT"
if ! debootstrap --variant=minbase --include=python3,python3-pip,python3-venv \
        "$SUITE" "$ROOT" > "$ROOT.log" 2>&1; then
    say "debootstrap failed (its log: $ROOT.log):"
    tail -5 "$ROOT.log" >&2
    exit 1
fi
rm -f "$ROOT.log"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
# Debian marks its python as externally managed (PEP 668): a CI stage installs into it.
rm -f "$ROOT"/usr/lib/python3*/EXTERNALLY-MANAGED
tar -C "$ROOT" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["python3"]' - "$IMAGE" >/dev/null
say "built $IMAGE"
