#!/usr/bin/env bash
# `make demo-clean`: remove everything the demo made — its agent (by the pid it
# recorded) and, on the Docker engine, only what carries the demo agent's instance id
# (label io.seamless.agent, recorded in demo.json): stage, integration, deploy and front
# containers, networks and images. A same-named service of another agent sharing the
# engine is never touched. Then .demo/.
#   scripts/demo-clean.sh [DEMO_DIR]    (default: .demo in the repository)
set -uo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${1:-.demo}
INSTANCE=""
if [ -f "$DEMO_DIR/demo.json" ]; then
    INSTANCE=$(python3 -c 'import json, re, sys
value = json.load(open(sys.argv[1])).get("instance") or ""
print(value if re.fullmatch(r"[0-9a-f]{4,32}", value) else "")' "$DEMO_DIR/demo.json" \
        2>/dev/null)
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

if [ -z "$INSTANCE" ]; then
    say "no agent instance recorded in $DEMO_DIR/demo.json: leaving the Docker engine alone"
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    mine="label=io.seamless.agent=$INSTANCE"
    # Labelled stage, deploy and front containers; compose projects of its runs are named
    # seamless-<instance>-run<id>.
    mapfile -t containers < <({ docker ps -aq --filter "$mine"
                                docker ps -aq --filter "name=^seamless-$INSTANCE-run"; } | sort -u)
    if [ ${#containers[@]} -gt 0 ]; then
        say "removing ${#containers[@]} container(s) of agent $INSTANCE"
        docker rm -f "${containers[@]}" >/dev/null
    fi
    mapfile -t networks < <(docker network ls -q --filter "$mine")
    if [ ${#networks[@]} -gt 0 ]; then
        say "removing ${#networks[@]} network(s) of agent $INSTANCE"
        docker network rm "${networks[@]}" >/dev/null
    fi
    mapfile -t images < <(docker images -q --filter "$mine" | sort -u)
    if [ ${#images[@]} -gt 0 ]; then
        say "removing ${#images[@]} image(s) of agent $INSTANCE"
        docker rmi -f "${images[@]}" >/dev/null
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
