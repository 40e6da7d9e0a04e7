#!/bin/sh
# The whole systemd start path under a real systemd (#15.3): a Debian root filesystem
# (the seamless/python:3 image of `make python-image`, plus systemd) booted with
# `systemd-nspawn -b`; in it this checkout's wheel in /opt/seamless, `init --system`,
# `install-service`, `systemctl enable`; a probe unit waits for /healthz, records the
# unit's state and journal, stops the agent and powers off. Not part of `make test`
# (it downloads systemd from Debian once, ~2 min, and boots a container).
# Usage: scripts/systemd-boot-check.sh [PYTHON]   (PYTHON builds the wheel; default .venv)
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-$HERE/.venv/bin/python}
CACHE=${SEAMLESS_NSPAWN_CACHE:-/var/cache/seamless/nspawn}
ROOT=$CACHE/rootfs
PORT=8799
say() { echo "systemd-boot-check: $*"; }
NSPAWN="systemd-nspawn -q --register=no --keep-unit"

command -v systemd-nspawn >/dev/null || apt-get install -y -qq systemd-container >/dev/null
if [ ! -e "$ROOT/lib/systemd/systemd" ]; then
    say "root filesystem from seamless/python:3, with systemd (once)"
    rm -rf "$ROOT"; mkdir -p "$ROOT"
    cid=$(docker create seamless/python:3 /bin/true)
    docker export "$cid" | tar -x -C "$ROOT"; docker rm "$cid" >/dev/null
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    $NSPAWN -D "$ROOT" --pipe /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus git >/dev/null'
fi
say "this checkout's wheel into /opt/seamless"
rm -rf "$ROOT/wheel" "$ROOT/opt/seamless" "$ROOT/etc/seamless" "$ROOT/var/lib/seamless" \
       "$ROOT"/var/tmp/probe.*
"$PY" -m pip wheel -q --no-deps -w "$ROOT/wheel" "$HERE" 2>/dev/null
BINDS=""
for p in /opt/pypi /opt/pypi-more /opt/wheels /etc/pip.conf /etc/xdg/pip /etc/ssl/certs; do
    [ -e "$p" ] && BINDS="$BINDS --bind-ro=$p"
done
# shellcheck disable=SC2086
$NSPAWN -D "$ROOT" $BINDS --pipe /bin/sh -c 'python3 -m venv /opt/seamless &&
    /opt/seamless/bin/pip install -q /wheel/*.whl &&
    ln -sf /opt/seamless/bin/seamless-agent /usr/local/bin/seamless-agent'
cat > "$ROOT/root/probe.sh" <<PROBE
#!/bin/sh
for i in \$(seq 90); do
    python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:$PORT/healthz").read().decode())' \
        > /var/tmp/probe.healthz 2>&1 && break
    sleep 1
done
systemctl show seamless-agent -p ActiveState -p SubState -p User -p ExecStart > /var/tmp/probe.state
journalctl -u seamless-agent --no-pager > /var/tmp/probe.journal 2>&1
systemctl stop seamless-agent
systemctl show seamless-agent -p ActiveState -p Result -p ExecMainStatus > /var/tmp/probe.stopped
systemctl poweroff
PROBE
chmod +x "$ROOT/root/probe.sh"
say "init --system, install-service, enable"
$NSPAWN -D "$ROOT" --pipe /bin/sh -c "set -e
    id seamless >/dev/null 2>&1 || useradd --system --home /var/lib/seamless --shell /usr/sbin/nologin seamless
    seamless-agent init --system --non-interactive --executor auto --port $PORT --user seamless
    seamless-agent install-service --user seamless
    printf '[Unit]\nAfter=seamless-agent.service\nWants=seamless-agent.service\n[Service]\nType=oneshot\nExecStart=/root/probe.sh\n[Install]\nWantedBy=multi-user.target\n' > /etc/systemd/system/seamless-probe.service
    systemctl enable seamless-agent.service seamless-probe.service"
say "booting (systemd-nspawn -b, private network, at most 240 s)"
timeout 240 $NSPAWN --private-network -b -D "$ROOT" > "$CACHE/boot.log" 2>&1 || true
for f in healthz state stopped; do
    echo "== $f"; cat "$ROOT/var/tmp/probe.$f" 2>/dev/null || echo "(none)"
done
grep -q '"status"' "$ROOT/var/tmp/probe.healthz" 2>/dev/null \
    && grep -q 'ActiveState=active' "$ROOT/var/tmp/probe.state" \
    && grep -q 'Result=success' "$ROOT/var/tmp/probe.stopped" \
    && { say "OK: the unit started the agent under systemd, /healthz answered, it stopped cleanly"; exit 0; }
say "FAILED: see $ROOT/var/tmp/probe.journal and $CACHE/boot.log"; exit 1
