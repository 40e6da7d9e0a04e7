"""Stage overhead: ten runs through the agent vs a shell script doing the same work.

Each agent run: a new commit (mirror fetch + workspace), Code Quality and Unit Test
running `true` in the base image, the other stages skipped; timed from trigger to
final status. The baseline: the same ten `git clone`s and twenty `docker run --rm`,
as one shell script per run. Baseline and agent take turns (script 1, run 1, script
2, …), so a machine that speeds up or slows down during the bench (a shared VM does)
weighs on both alike. Containers the agent removes after a run's final status are
gone before the next script starts.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

from _common import commit, make_repo, parser, report

from agent.config import AgentConfig
from agent.runtime import Agent
from store.models import NoTargetConfig, PipelineConfig, RunKind, ServiceConfig, Trigger

IMAGE = "seamless/busybox:latest"
RUNS = 10


def raw_script(repo: Path, work: Path, i: int) -> float:
    script = (f"git clone -q {repo} {work}/clone{i} && "
              f"docker run --rm -v {work}/clone{i}:/workspace -w /workspace {IMAGE} true && "
              f"docker run --rm -v {work}/clone{i}:/workspace -w /workspace {IMAGE} true")
    began = time.perf_counter()
    subprocess.run(["sh", "-ec", script], check=True, capture_output=True)
    return time.perf_counter() - began


async def take_turns(repo: Path, root: Path) -> tuple[list[float], list[float]]:
    """(agent run times, shell script times), alternating."""
    agent = Agent(AgentConfig(data_dir=root / "data", poll_enabled=False, executor="docker"))
    await agent.start()
    try:
        agent.store.create_pipeline(PipelineConfig(name="bench", staging=NoTargetConfig(),
                                                   production=NoTargetConfig()))
        service = agent.store.create_service(ServiceConfig(
            name="overhead", pipeline="bench", repo_url=str(repo), stage_image=IMAGE,
            code_quality_command="true", unit_test_command="true", dockerfile=None))
        agent_times, raw_times = [], []
        for i in range(RUNS):
            raw_times.append(raw_script(repo, root / "raw", i))
            sha = commit(repo, f"run {i}")
            began = time.perf_counter()
            run = agent.engine.submit(service, trigger=Trigger.manual, kind=RunKind.full,
                                      sha=sha, branch="main")
            while not agent.store.get_run(run.id).status.finished:
                await asyncio.sleep(0.005)
            agent_times.append(time.perf_counter() - began)
            status = agent.store.get_run(run.id).status.value
            if status != "success":
                raise SystemExit(f"run {run.id} ended {status}")
            agent.executors.drain()  # the script's turn starts on a quiet engine
        return agent_times, raw_times
    finally:
        await agent.stop()
        agent.close()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root / "repo")
        times, raw_times = asyncio.run(take_turns(repo, root))
    agent_s, raw_s = sum(times), sum(raw_times)
    figures = {"agent_s": round(agent_s, 3), "raw_s": round(raw_s, 3),
               "ratio": round(agent_s / raw_s, 3)}
    report("stage overhead: 10 runs, 2 container stages each", [
        ("agent total (s)", agent_s), ("agent per run median (s)", sorted(times)[RUNS // 2]),
        ("shell script (s)", raw_s), ("agent / raw", agent_s / raw_s),
    ], figures, args.json)


if __name__ == "__main__":
    main()
