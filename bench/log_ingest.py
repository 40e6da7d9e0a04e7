"""Log ingestion: a container printing N lines of 100 bytes, stored through
DockerExecutor + LogWriter into SQLite, compared with `docker logs` reading the
same finished container.

    .venv/bin/python bench/log_ingest.py [--lines 1000000] [--json]

agent lines/s: from container start until every line is committed (the live
path: attach stream → lines → masking → bounded queue → batched inserts).
raw lines/s: `docker logs <container> > /dev/null` afterwards, same container.
Peak RSS is this process's high-water mark (it only runs the agent pipeline).
search index after: from the last line committed until every line is in the search
index (the writer indexes once the flood eases), and the CPU that took.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.bus import Bus  # noqa: E402
from agent.executors.base import StageSpec, stage_labels  # noqa: E402
from agent.executors.docker import DockerExecutor  # noqa: E402
from agent.logs.writer import LogWriter  # noqa: E402
from store.store import Store  # noqa: E402

IMAGE = "seamless/busybox:latest"
# 7-digit counter + space + 91 zeros + newline = 100 bytes a line.
COMMAND = ('awk "BEGIN{s=sprintf(\\"%091d\\", 0); '
           'for(i=0;i<{n};i++) printf \\"%07d %s\\n\\", i, s}"')


def indexed(store: Store) -> int:
    row = store.query_one("SELECT COUNT(*) FROM log_search_rows")
    return int(row[0]) if row else 0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(lines: int, secrets: list[str]) -> dict[str, float]:
    client = docker.from_env(timeout=300)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        writer = LogWriter(store, Bus())
        writer.start()
        executor = DockerExecutor(client)
        executor.reaper.submit = lambda container_id: None  # type: ignore[method-assign]  # keep it for `docker logs`
        run_id = 1
        spec = StageSpec(run_id=run_id, stage="Unit Test", service="bench", image=IMAGE,
                         command=COMMAND.replace("{n}", str(lines)), workspace=Path(tmp),
                         timeout_s=900, container_name=f"seamless-bench-{uuid.uuid4().hex[:8]}",
                         labels={**stage_labels(run_id, "Unit Test", "bench"),
                                 # not io.seamless.managed=1: no agent's cleanup takes it
                                 "io.seamless.managed": "bench"})
        saved: dict[str, str] = {}
        log = writer.stage_log(run_id, spec.stage, secrets)
        started = time.perf_counter()
        cpu_started = time.process_time()
        result = executor.run(spec, log, threading.Event(), lambda s: saved.update(s or {}))
        log.flush()
        agent_s = time.perf_counter() - started
        agent_cpu_s = time.process_time() - cpu_started
        stored = store.count_log_lines(run_id)
        # The writer indexes for search once the flood eases (store.log_index): how long
        # after the last line until every line is searchable through the index, and
        # the CPU that took.
        deadline = time.perf_counter() + 600
        while indexed(store) < stored and time.perf_counter() < deadline:
            time.sleep(0.05)
        index_lag_s = time.perf_counter() - started - agent_s
        index_cpu_s = time.process_time() - cpu_started - agent_cpu_s
        writer.stop()
        container_id = saved["container_id"]
        state = client.api.inspect_container(container_id)["State"]
        gen_s = (datetime.fromisoformat(state["FinishedAt"])
                 - datetime.fromisoformat(state["StartedAt"])).total_seconds()
        try:
            started = time.perf_counter()
            subprocess.run(["docker", "logs", container_id], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            raw_s = time.perf_counter() - started
        finally:
            client.api.remove_container(container_id, force=True)
        store.close()
    if result.exit_code != 0 or stored != lines + 0:
        raise SystemExit(f"bench run failed: {result}, {stored} of {lines} lines stored")
    agent_rate = lines / agent_s
    raw_rate = lines / raw_s
    return {"lines": lines, "agent_s": agent_s, "raw_s": raw_s, "container_s": gen_s,
            "agent_cpu_s": agent_cpu_s, "index_lag_s": index_lag_s,
            "index_cpu_s": index_cpu_s,
            "agent_lines_per_s": agent_rate, "raw_lines_per_s": raw_rate,
            "ratio": agent_rate / raw_rate, "agent_peak_rss_mb": peak_rss_mb(),
            "peak_pending": writer.peak_pending}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--secret", action="append", default=[],
                        help="mask this value (measures masking cost)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.lines, args.secret)
    print(f"{'measure':<28}{'value':>14}")
    print(f"{'lines':<28}{figures['lines']:>14,}")
    print(f"{'agent (executor+SQLite) s':<28}{figures['agent_s']:>14.2f}")
    print(f"{'  of which container ran s':<28}{figures['container_s']:>14.2f}")
    print(f"{'  agent CPU s':<28}{figures['agent_cpu_s']:>14.2f}")
    print(f"{'search index after, s':<28}{figures['index_lag_s']:>14.2f}")
    print(f"{'  its CPU s':<28}{figures['index_cpu_s']:>14.2f}")
    print(f"{'docker logs s':<28}{figures['raw_s']:>14.2f}")
    print(f"{'agent lines/s':<28}{figures['agent_lines_per_s']:>14,.0f}")
    print(f"{'docker logs lines/s':<28}{figures['raw_lines_per_s']:>14,.0f}")
    print(f"{'ratio (goal >= 0.5)':<28}{figures['ratio']:>14.2f}")
    print(f"{'agent peak RSS MB (< 250)':<28}{figures['agent_peak_rss_mb']:>14.1f}")
    print(f"{'queue high-water (lines)':<28}{figures['peak_pending']:>14,}")
    if args.json:
        keys = ("lines", "agent_lines_per_s", "raw_lines_per_s", "ratio", "agent_peak_rss_mb",
                "agent_cpu_s", "index_lag_s", "index_cpu_s")
        print(json.dumps({k: round(figures[k], 3) for k in keys}))


if __name__ == "__main__":
    main()
