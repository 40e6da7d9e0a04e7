"""A seeded agent database for TUI tests, screenshots and the log benchmark.

Everything is written through `Store`; timestamps are then pinned to fixed values
(relative to `FIXED_NOW`) so snapshots do not change from one run to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from store.db import iso
from store.ids import new_ulid
from store.models import (
    DEFAULT_STAGES,
    ApprovalStatus,
    CommitSummary,
    DeploymentKind,
    DeploymentStatus,
    DockerTargetConfig,
    LogLine,
    LogStream,
    NoTargetConfig,
    PipelineConfig,
    Role,
    RunKind,
    RunStatus,
    ServiceConfig,
    StageStatus,
    Trigger,
)
from store.store import Store

FIXED_NOW = datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC)
S = StageStatus


def sha(n: int) -> str:
    return f"{n:x}".rjust(7, "a") + "0" * 33


@dataclass
class Seeded:
    tokens: dict[Role, str] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # label -> run id
    image_repo: str = "seamless-tui-test"
    catalog: str = "catalog"  # the name of the service deployed for real


def _run(store: Store, service_id: int, n: int, status: RunStatus, stages: list[StageStatus],
         minutes_ago: float, took_s: float | None, author: str, message: str,
         trigger: Trigger = Trigger.push) -> int:
    run = store.create_run(service_id, trigger=trigger, kind=RunKind.full, sha=sha(n),
                           branch="main", author=author, message=message)
    created = FIXED_NOW - timedelta(minutes=minutes_ago)
    finished = created + timedelta(seconds=took_s) if took_s is not None else None
    with store.write() as conn:
        conn.execute("UPDATE runs SET status=?, created_at=?, started_at=?, finished_at=?"
                     " WHERE id=?", (status.value, iso(created), iso(created),
                                     iso(finished) if finished else None, run.id))
        start = created
        for pos, st in enumerate(stages):
            began = iso(start) if st not in (S.idle, S.skipped) else None
            end = start + timedelta(seconds=12 + 7 * pos)
            done = iso(end) if st.finished and st is not S.skipped else None
            conn.execute("UPDATE stages SET status=?, started_at=?, finished_at=?, exit_code=?"
                         " WHERE run_id=? AND position=?",
                         (st.value, began, done, 1 if st is S.failed else (
                             0 if done else None), run.id, pos))
            start = end
    return run.id


def add_log(store: Store, run_id: int, stage: str, count: int, *, start: datetime = FIXED_NOW,
            batch: int = 20_000, text: str = "line {i}: compiling module {m}") -> None:
    """`count` lines in big batched transactions (a million takes seconds, not minutes)."""
    for first in range(0, count, batch):
        lines = []
        for i in range(first, min(first + batch, count)):
            ts = start + timedelta(milliseconds=i)
            body = text.format(i=i + 1, m=i % 97)
            if i % 50_000 == 49_999:
                body = f"\x1b[31mERROR\x1b[0m flaky test at line {i + 1}"
            lines.append(LogLine(id=new_ulid(ts.timestamp()), run_id=run_id, stage=stage,
                                 stream=LogStream.stdout, text=body, ts=ts))
        store.insert_log_lines(lines)


def seed(store: Store, image_repo: str = "seamless-tui-test",
         catalog: str = "catalog") -> Seeded:
    """`catalog`: the name of the service tests deploy for real. Colour containers and
    fronts are named by service, so a test that deploys it on the shared engine names it
    alone (two agents deploying one `catalog` remove each other's colours)."""
    out = Seeded(image_repo=image_repo, catalog=catalog)
    out.tokens = {role: store.create_token(f"{role.value}-tui", role)[0] for role in Role}
    for name in ("shop", "platform"):
        # Reruns run for real, on the host: `executor: local`, an admin's per-pipeline choice.
        store.create_pipeline(PipelineConfig(name=name, auto_deploy=name != "shop",
                                             executor="local",
                                             staging=NoTargetConfig(),
                                             production=NoTargetConfig()))
    services = {}
    for name, pipeline in (("payments", "shop"), ("checkout", "shop"), (catalog, "shop"),
                           ("auth", "platform")):
        extra = {}
        if name == catalog:  # the rollback tests deploy this one for real
            extra = {"staging": DockerTargetConfig(), "production": DockerTargetConfig(),
                     "image_repository": f"{image_repo}/{catalog}"}
        services[name] = store.create_service(ServiceConfig(
            name=name, pipeline=pipeline, repo_url=f"https://git.example.com/acme/{name}.git",
            unit_test_command="sh test.sh", code_quality_command="sh lint.sh", **extra))
    ok, fail = [S.success] * 7, [S.success, S.success, S.failed] + [S.skipped] * 4
    pay = services["payments"].id
    out.runs["pay-old"] = _run(store, pay, 0x101, RunStatus.success, ok, 600, 312, "ana",
                               "Add refunds endpoint")
    out.runs["pay-prev"] = _run(store, pay, 0x102, RunStatus.success, ok, 300, 298, "ben",
                                "Retry card captures")
    out.runs["pay-approval"] = _run(
        store, pay, 0x103, RunStatus.awaiting_approval, [S.success] * 6 + [S.awaiting_approval],
        42, None, "chen", "Switch to idempotency keys")
    out.runs["checkout"] = _run(store, services["checkout"].id, 0x201, RunStatus.failed, fail,
                                95, 74, "dara", "Bump cart library")
    out.runs["catalog"] = _run(store, services[catalog].id, 0x301, RunStatus.success, ok, 1500,
                               401, "eli", "Cache product pages")
    out.runs["auth"] = _run(store, services["auth"].id, 0x401, RunStatus.cancelled,
                            [S.success, S.cancelled] + [S.skipped] * 5, 7, 20, "fay",
                            "Rotate signing keys", trigger=Trigger.manual)
    for stage in DEFAULT_STAGES[:3]:
        add_log(store, out.runs["checkout"], stage, 60, text="checkout " + stage + " {i}")
    add_log(store, out.runs["pay-approval"], DEFAULT_STAGES[2], 200,
            text="\x1b[32mPASS\x1b[0m test_{i} (payments)")
    add_deployments(store, pay, "payments", image_repo, [0x101, 0x102, 0x103])
    add_deployments(store, services[catalog].id, catalog, image_repo, [0x2f1, 0x2f2, 0x301])
    store.create_approval(
        run_id=out.runs["pay-approval"], candidate_sha=sha(0x103), production_sha=sha(0x102),
        commits=[CommitSummary(sha=sha(0x103), author="chen", message="Switch to idempotency"
                               " keys"),
                 CommitSummary(sha=sha(0x1031), author="ben", message="Log capture latency")],
        staging_health="active: GET /health → 200", expires_at=None)
    with store.write() as conn:
        conn.execute("UPDATE approvals SET requested_at=?",
                     (iso(FIXED_NOW - timedelta(minutes=30)),))
    assert store.get_approval(out.runs["pay-approval"]).status is ApprovalStatus.pending
    return out


def add_deployments(store: Store, service_id: int, name: str, repo: str, shas: list[int]) -> None:
    """Three commits: the first two went to both environments, the third to staging."""
    history = [("staging", shas[0], 590), ("production", shas[0], 580),
               ("staging", shas[1], 290), ("production", shas[1], 280),
               ("staging", shas[2], 35)]
    for env, n, minutes in history:
        dep = store.create_deployment(service_id=service_id, environment=env, sha=sha(n),
                                      image=f"{repo}/{name}:{sha(n)}",
                                      kind=DeploymentKind.deploy, actor="seamless",
                                      message=f"commit {n:x}", author="ana")
        store.finish_deployment(dep.id, DeploymentStatus.active)
        stamp = FIXED_NOW - timedelta(minutes=minutes)
        with store.write() as conn:
            conn.execute("UPDATE deployments SET started_at=?, finished_at=? WHERE id=?",
                         (iso(stamp), iso(stamp + timedelta(seconds=30)), dep.id))
