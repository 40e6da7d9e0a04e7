"""Serve a real agent (engine + API) in its own process, like `seamless-agent serve`.

Used by the reliability tests to `kill -9` the whole agent, to measure its memory, and to
read its own log output (stderr, INFO and up).
Usage: python -m tests.reliability.agent_server DATA_DIR PORT [MAX_PARALLEL] [DOCKER_HOST]
       [CONFIG_JSON]   (more AgentConfig fields, e.g. '{"executor": "auto"}')
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import uvicorn

from agent.api.app import create_app
from agent.api.serving import server_config
from agent.config import AgentConfig
from agent.runtime import Agent


def main(data_dir: str, port: str, max_parallel: str = "4", docker_host: str = "",
         config_json: str = "{}") -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fields = {"executor": "docker", **json.loads(config_json or "{}")}
    config = AgentConfig(data_dir=Path(data_dir), port=int(port), poll_enabled=False,
                         max_parallel_runs=int(max_parallel), docker_host=docker_host or None,
                         **fields)
    app = create_app(Agent(config))
    uvicorn.Server(server_config(app, "127.0.0.1", int(port), log_level="info",
                                 access_log=True)).run()


if __name__ == "__main__":
    main(*sys.argv[1:6])
