#!/usr/bin/env bash
# `make demo ARGS=...`: the demo shop flowing through Seamless (see agent/demo/).
#   scripts/demo.sh               build the shop, start the agent, play the story in the TUI
#   scripts/demo.sh --headless    the same without the TUI; exits non-zero on any miss
#   scripts/demo.sh --keep        leave the demo agent running afterwards
# `make demo` has already prepared the virtualenv, the Docker engine and the base image.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m agent.demo "$@"
