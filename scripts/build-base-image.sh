#!/usr/bin/env bash
# Build the local base image seamless/busybox:latest without any registry.
#
# Why: nothing can be pulled on our CI machines, so every test/demo image is
# built FROM this one. It is a root filesystem holding a static busybox, one
# symlink per applet, /tmp and minimal /etc/passwd + /etc/group, turned into
# an image with `docker import`.
#
# Usage: scripts/build-base-image.sh          (no-op when the image exists)
#        FORCE=1 scripts/build-base-image.sh  (rebuild)
set -euo pipefail

IMAGE=${SEAMLESS_BASE_IMAGE:-seamless/busybox:latest}
BUSYBOX=${BUSYBOX:-/bin/busybox}
LOCK=${TMPDIR:-/tmp}/seamless-base-image.lock

say() { echo "build-base-image: $*" >&2; }

image_exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; }

if [ "${FORCE:-0}" != 1 ] && image_exists; then
    exit 0
fi

# Tests of several engineers may ask for the image at the same moment:
# serialize builders and re-check once we hold the lock.
exec 9>"$LOCK"
flock -w 120 9
if [ "${FORCE:-0}" != 1 ] && image_exists; then
    exit 0
fi

if [ ! -x "$BUSYBOX" ]; then
    say "$BUSYBOX not found (apt-get install busybox-static, or run scripts/ensure-docker.sh)"
    exit 1
fi
# A dynamically linked busybox (Debian's plain `busybox` package) would not
# start in an image without libc.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    say "$BUSYBOX is dynamically linked; install busybox-static"
    exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,www,workspace,var/log,proc,sys,dev}
mkdir -m 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"

# Every applet in /bin (PATH covers it), plus /usr/bin/env for
# `#!/usr/bin/env sh` shebangs.
for applet in $("$BUSYBOX" --list); do
    case "$applet" in busybox|linuxrc) continue ;; esac
    ln -sf busybox "$root/bin/$applet"
done
ln -sf ../../bin/busybox "$root/usr/bin/env"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

# On FORCE=1, the previous image becomes untagged: remember it to drop it after.
old_id=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)

say "importing $IMAGE"
# --owner/--group: files must belong to root inside the image whoever builds it.
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . |
    docker import \
        --change 'CMD ["/bin/sh"]' \
        --change 'ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin' \
        --change 'WORKDIR /' \
        --message "seamless base image: static busybox $("$BUSYBOX" | head -n1 | cut -d' ' -f2)" \
        - "$IMAGE" >/dev/null

docker run --rm "$IMAGE" sh -c 'echo ok' | grep -qx ok || { say "smoke test failed"; exit 1; }
if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
    # Fails harmlessly while containers or child images still use it.
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
say "built $IMAGE"
