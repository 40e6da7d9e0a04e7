"""Monorepo change detection (#18): a repository with 200 services and 20,000 files,
pushes of 1 to 50 commits.

    .venv/bin/python bench/monorepo.py [--services 200] [--files 20000] [--pushes 30] [--json]

`decide_p99_ms`: the time to decide which of the 200 services a push runs, and why — each
service's last successful run looked up, the diffs from those shas to the pushed one in
the mirror (`git diff --name-status -M`, one per distinct base), every service's globs
matched — with the pushed commits already fetched into the mirror (the fetch is
network-bound: `fetch_p99_ms`). `act_p99_ms`: then storing the 200 decisions (one
transaction), queueing the runs and announcing the decisions (a push touching the shared
library queues 200 runs). Runs are marked successful after each
push, as if they had passed, so later pushes compare against them. `webhook_p99_ms`: a
signed push webhook for the repository answered by the real API in this process (the
decision runs after the answer), p99. Baselines from the same run: one bare
`git diff --name-status -M` process in the mirror over the push's commits, and a /healthz
round trip (each request on a new connection, from one client made beforehand). Goals:
decide p99 < 200 ms, webhook p99 < 100 ms.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _common import REPO_ROOT, parser, report

sys.path.insert(0, str(REPO_ROOT))

from agent.api.app import create_app  # noqa: E402
from agent.runtime import Agent  # noqa: E402
from agent.triggers.changes import ChangeRequest  # noqa: E402
from agent.triggers.github import signature  # noqa: E402
from store.models import (  # noqa: E402
    PipelineConfig,
    RunKind,
    RunStatus,
    ServiceConfig,
    Trigger,
)
from tests.harness import Fakes, agent_config  # noqa: E402
from tests.harness.server import ServerThread  # noqa: E402

SECRET = "bench-monorepo-secret"
COMMITS_PER_PUSH = (1, 2, 5, 10, 20, 50)
LIBRARY_CHANCE = 0.01  # a commit touches libs/common (every service depends on it)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n" % len(raw) + raw + b"\n"


class Repo:
    """The repository, written with `git fast-import` (20,000 files in a second)."""

    def __init__(self, path: Path, services: int, files: int, pushes: int, seed: int) -> None:
        self.path = path
        self.services = services
        self.per_service = max(1, files // services)
        self.rng = random.Random(seed)
        path.mkdir(parents=True)
        self._git("init", "-q", "-b", "main")
        stream = bytearray()
        stream += b"commit refs/heads/main\nmark :1\n"
        stream += b"committer bench <bench@seamless.invalid> 1700000000 +0000\n"
        stream += _data("initial")
        stream += self._modify("libs/common/lib.txt", "lib 0")
        for s in range(services):
            for f in range(self.per_service):
                stream += self._modify(self._file(s, f), f"{s} {f} 0")
        mark, self.push_marks = 1, []
        self.commits_per_push = []
        for push in range(pushes + 1):  # push 0 is the warm-up
            count = 1 if push == 0 else COMMITS_PER_PUSH[push % len(COMMITS_PER_PUSH)]
            for c in range(count):
                mark += 1
                stream += b"commit refs/heads/main\nmark :%d\n" % mark
                stream += b"committer bench <bench@seamless.invalid> %d +0000\n" % (
                    1700000000 + mark)
                stream += _data(f"push {push} commit {c}") + b"from :%d\n" % (mark - 1)
                for _ in range(self.rng.randint(1, 3)):
                    if self.rng.random() < LIBRARY_CHANCE:
                        stream += self._modify("libs/common/lib.txt", f"lib {mark}")
                    else:
                        s, f = self.rng.randrange(services), self.rng.randrange(self.per_service)
                        stream += self._modify(self._file(s, f), f"{s} {f} {mark}")
            self.push_marks.append(mark)
            self.commits_per_push.append(count)
        marks = path / "marks"
        subprocess.run(["git", "fast-import", "--quiet", f"--export-marks={marks}"], cwd=path,
                       input=bytes(stream), check=True)
        by_mark = dict(line.split()[::1] for line in marks.read_text().splitlines())
        self.shas = [by_mark[f":{m}"] for m in self.push_marks]
        self._git("update-ref", "refs/heads/main", self.shas[0])

    @staticmethod
    def _file(service: int, index: int) -> str:
        return f"services/svc-{service:03d}/src/file-{index:03d}.txt"

    @staticmethod
    def _modify(path: str, text: str) -> bytes:
        return f"M 100644 inline {path}\n".encode() + _data(text)

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True,
                              text=True).stdout

    def move_to(self, index: int) -> str:
        self._git("update-ref", "refs/heads/main", self.shas[index])
        return self.shas[index]


def add_services(agent: Agent, repo: Repo) -> None:
    agent.store.create_pipeline(PipelineConfig(name="bench", auto_deploy=True))
    for s in range(repo.services):
        agent.store.create_service(ServiceConfig(
            name=f"svc-{s:03d}", pipeline="bench", repo_url=str(repo.path),
            root=f"services/svc-{s:03d}", paths=[f"services/svc-{s:03d}/**"],
            depends_on_paths=["libs/common/**"], unit_test_command="lines=1",
            webhook_secret=SECRET))


def decide(agent: Agent, sha: str, batch: str) -> tuple[float, float, float, int]:
    """(fetch ms, decide ms, act ms, services run); the runs are then marked successful."""
    services = agent.store.list_services()
    requests = [ChangeRequest(service=s, trigger=Trigger.push, kind=RunKind.full, sha=sha,
                              branch="main") for s in services]
    started = time.perf_counter()
    agent.workspaces.fetch(services[0], sha)
    fetched = time.perf_counter()
    verdicts = agent.changes.verdicts(requests)
    decided = time.perf_counter()
    decisions = agent.changes.act(requests, verdicts, batch)
    done = time.perf_counter()
    for d in decisions:
        if d.run_id is not None:
            agent.store.set_run_status(d.run_id, RunStatus.success)
    return ((fetched - started) * 1000, (decided - fetched) * 1000, (done - decided) * 1000,
            sum(d.ran for d in decisions))


def bare_diff_ms(agent: Agent, base: str, head: str) -> float:
    mirror = agent.workspaces.mirror_for(agent.store.list_services()[0])
    started = time.perf_counter()
    subprocess.run(["git", "diff", "--name-status", "-M", base, head, "--"], cwd=mirror,
                   check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def webhook(client: httpx.Client, server: ServerThread, repo: Repo, before: str, after: str
            ) -> float:
    body = json.dumps({
        "ref": "refs/heads/main", "before": before, "after": after, "deleted": False,
        "repository": {"clone_url": str(repo.path), "full_name": "bench/monorepo"},
        "head_commit": {"message": "bench", "author": {"name": "bench"}},
        "pusher": {"name": "bench"}}).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
               "X-GitHub-Delivery": str(uuid.uuid4()),
               "X-Hub-Signature-256": signature(SECRET, body)}
    started = time.perf_counter()
    answer = client.post(f"{server.url}/webhooks/github", content=body, headers=headers)
    took = (time.perf_counter() - started) * 1000
    if answer.status_code != 202:
        raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text[:300]}")
    return took


def wait_decided(agent: Agent, sha: str, services: int, timeout_s: float = 120) -> None:
    """Until the push's decision is stored and its runs queued (the next webhook is then
    answered on an idle agent: what is measured is the answer, not the decision)."""
    deadline = time.monotonic() + timeout_s
    while True:
        decisions = agent.store.list_decisions(sha=sha, limit=services + 1)
        if len(decisions) == services and all(d.run_id for d in decisions if d.ran):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the decision for {sha[:12]} did not come within {timeout_s} s")
        time.sleep(0.02)
    for d in decisions:
        if d.run_id is not None:
            agent.store.set_run_status(d.run_id, RunStatus.success)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--files", type=int, default=20_000)
    p.add_argument("--pushes", type=int, default=30)
    p.add_argument("--seed", type=int, default=18)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="seamless-bench-monorepo-") as tmp:
        root = Path(tmp)
        made = time.perf_counter()
        repo = Repo(root / "repo", args.services, args.files, 2 * args.pushes, args.seed)
        repo_s = time.perf_counter() - made
        settings = agent_config(root / "data", log_level="warning")
        agent = Agent(settings, Fakes().parts(settings))  # not started: runs stay queued
        add_services(agent, repo)
        server = ServerThread(create_app(agent, manage_agent=False)).start()
        try:
            first_fetch, _, _, _ = decide(agent, repo.move_to(0), "warm-up")  # the clone
            fetches, decides, acts, diffs, ran, commits = [], [], [], [], [], []
            for push in range(1, args.pushes + 1):
                sha = repo.move_to(push)
                fetch_ms, decide_ms, act_ms, count = decide(agent, sha, f"push-{push}")
                fetches.append(fetch_ms)
                decides.append(decide_ms)
                acts.append(act_ms)
                diffs.append(bare_diff_ms(agent, repo.shas[push - 1], sha))
                ran.append(count)
                commits.append(repo.commits_per_push[push])
            answers, health = [], []
            # One client for every request, made before the clock starts: a new httpx
            # client costs an SSL context (~20 ms quiet), which is the bench's, not the
            # agent's. Each request still opens its own connection, as GitHub does.
            client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
            for push in range(args.pushes + 1, 2 * args.pushes + 1):
                sha = repo.move_to(push)
                answers.append(webhook(client, server, repo, repo.shas[push - 1], sha))
                started = time.perf_counter()
                client.get(f"{server.url}/healthz")
                health.append((time.perf_counter() - started) * 1000)
                wait_decided(agent, sha, args.services)
            client.close()
        finally:
            server.stop()
            agent.changes.close()
            agent.close()
    diff_p99 = percentile(diffs, 99)
    health_p99 = percentile(health, 99)
    figures = {
        "services": args.services,
        "files": args.services * repo.per_service + 1,
        "pushes": args.pushes,
        "commits_per_push": f"{min(commits)}-{max(commits)}",
        "services_run_per_push_median": sorted(ran)[len(ran) // 2],
        "decide_p50_ms": round(percentile(decides, 50), 1),
        "decide_p99_ms": round(percentile(decides, 99), 1),
        "act_p99_ms": round(percentile(acts, 99), 1),
        "act_per_run_queued_ms": round(sum(acts) / max(1, sum(ran)), 2),
        "fetch_p99_ms": round(percentile(fetches, 99), 1),
        "first_fetch_ms": round(first_fetch, 1),
        "baseline_git_diff_p99_ms": round(diff_p99, 1),
        "decide_vs_git_diff": round(percentile(decides, 99) / diff_p99, 2),
        "webhook_p50_ms": round(percentile(answers, 50), 1),
        "webhook_p99_ms": round(percentile(answers, 99), 1),
        "baseline_healthz_p50_ms": round(percentile(health, 50), 1),
        "baseline_healthz_p99_ms": round(health_p99, 1),
        "webhook_vs_healthz": round(percentile(answers, 99) / health_p99, 2),
        "repo_made_s": round(repo_s, 1),
    }
    rows = [(k, v) for k, v in figures.items()]
    report("monorepo: which of 200 services a push runs", rows, figures, args.json)


if __name__ == "__main__":
    main()
