#!/usr/bin/env bash
# `make demo-clean`: remove everything the demo made — its agent (by the pid it
# recorded), the deploy containers and networks of the shop's services, the stage and
# integration containers labelled for them, their seamless-demo/* images, and .demo/.
#   scripts/demo-clean.sh [DEMO_DIR]    (default: .demo in the repository)
set -uo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${1:-.demo}
SERVICES=(payments inventory notifications)
# A demo run with --suffix names its services differently; it records them in demo.json.
if [ -f "$DEMO_DIR/demo.json" ]; then
    mapfile -t recorded < <(python3 -c 'import json, sys
print("\n".join(json.load(open(sys.argv[1])).get("services", [])))' "$DEMO_DIR/demo.json" \
        2>/dev/null)
    [ ${#recorded[@]} -gt 0 ] && SERVICES=("${recorded[@]}")
fi

say() { echo "demo-clean: $*"; }

if [ -f "$DEMO_DIR/agent.pid" ]; then
    pid=$(cat "$DEMO_DIR/agent.pid")
    # Only our own agent: the pid may have been reused since (e.g. after a reboot).
    if [ -n "$pid" ] && grep -qa serve "/proc/$pid/cmdline" 2>/dev/null; then
        say "stopping the demo agent (pid $pid)"
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
fi

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    containers=()
    for svc in "${SERVICES[@]}"; do
        # Deploy colours are named seamless-<service>-<env>-<colour>; stage containers
        # carry the io.seamless.service label.
        while read -r id; do [ -n "$id" ] && containers+=("$id"); done < <(
            docker ps -aq --filter "name=^seamless-$svc-(staging|production)-(blue|green)$"
            docker ps -aq --filter "label=io.seamless.service=$svc")
    done
    if [ ${#containers[@]} -gt 0 ]; then
        mapfile -t containers < <(printf '%s\n' "${containers[@]}" | sort -u)
        say "removing ${#containers[@]} container(s)"
        docker rm -f "${containers[@]}" >/dev/null
    fi
    for svc in "${SERVICES[@]}"; do
        for env in staging production; do
            docker network rm "seamless-$svc-$env" >/dev/null 2>&1 && \
                say "removed network seamless-$svc-$env"
        done
    done
    pattern="^seamless-demo/($(IFS='|'; echo "${SERVICES[*]}")):"
    images=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E "$pattern" || true)
    if [ -n "$images" ]; then
        say "removing $(echo "$images" | wc -l) image(s) seamless-demo/*"
        echo "$images" | xargs docker rmi -f >/dev/null
    fi
fi

if [ -d "$DEMO_DIR" ]; then
    if [ -f "$DEMO_DIR/demo.json" ] || [ -z "$(ls -A "$DEMO_DIR")" ]; then
        rm -rf "$DEMO_DIR"
        say "removed $DEMO_DIR"
    else
        say "not removing $DEMO_DIR: it has no demo.json, so the demo did not make it"
    fi
fi
say "done"
