"""Search over a stage's whole stored log (paged by ULID), the agent's info line, and the
runs list filtered by branch."""

from __future__ import annotations

from datetime import timedelta

from store.db import now
from store.ids import new_ulid
from store.models import LogLine, LogStream, Role, RunKind, RunStatus, Trigger
from tests.api.conftest import LiveApi, add_service


def _lines(run_id: int, stage: str, count: int) -> list[LogLine]:
    start = now()
    out = []
    for i in range(1, count + 1):
        text = f"test_{i} \x1b[31mNeedle\x1b[0m failed" if i % 10 == 0 else f"test_{i} ok"
        out.append(LogLine(id=new_ulid((start + timedelta(milliseconds=i)).timestamp()),
                           run_id=run_id, stage=stage, stream=LogStream.stdout, text=text,
                           ts=start))
    return out


def test_search_pages_through_every_match_of_the_stage_with_line_numbers(api: LiveApi):
    store = api.agent.store
    svc = add_service(store)
    run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
    store.set_run_status(run.id, RunStatus.failed)
    store.insert_log_lines(_lines(run.id, "Unit Test", 3000))
    store.insert_log_lines(_lines(run.id, "Build", 50))  # another stage: never matched
    url = f"/api/v1/runs/{run.id}/logs/search"
    found = []
    with api.client(Role.viewer) as c:
        first = c.get(url, params={"stage": "Unit Test", "q": "NEEDLE"}).json()
        assert first["total"] == 300
        page, cursor = first, first["next_cursor"]
        found += page["matches"]
        while cursor:
            page = c.get(url, params={"stage": "Unit Test", "q": "needle",
                                      "after": cursor}).json()
            assert page["total"] is None  # counted on the first page only
            found += page["matches"]
            cursor = page["next_cursor"]
        back = c.get(url, params={"stage": "Unit Test", "q": "needle",
                                  "before": found[200]["id"], "limit": 5}).json()
        empty = c.get(url, params={"stage": "Unit Test", "q": ""})
        unknown = c.get(url, params={"stage": "Nope", "q": "x"})
    assert [m["number"] for m in found] == list(range(10, 3001, 10))
    assert [m["index"] for m in found] == list(range(1, 301))
    assert "Needle" in found[0]["text"]
    assert [m["index"] for m in back["matches"]] == [196, 197, 198, 199, 200]
    assert [m["number"] for m in back["matches"]] == [1960, 1970, 1980, 1990, 2000]
    assert empty.status_code == 422 and empty.json()["detail"][0]["field"] == "q"
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "stage"


def test_search_treats_like_wildcards_as_plain_text(api: LiveApi):
    store = api.agent.store
    svc = add_service(store)
    run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
    store.set_run_status(run.id, RunStatus.failed)
    texts = ["100% done", "1000 done", "a_b", "axb"]
    store.insert_log_lines([LogLine(id=new_ulid(), run_id=run.id, stage="Build",
                                    stream=LogStream.stdout, text=t, ts=now()) for t in texts])
    with api.client(Role.viewer) as c:
        pct = c.get(f"/api/v1/runs/{run.id}/logs/search", params={"stage": "Build", "q": "0%"})
        under = c.get(f"/api/v1/runs/{run.id}/logs/search", params={"stage": "Build", "q": "a_b"})
    assert [m["text"] for m in pct.json()["matches"]] == ["100% done"]
    assert [m["text"] for m in under.json()["matches"]] == ["a_b"]


def test_first_error_is_the_stages_first_error_line_with_its_number(api: LiveApi):
    store = api.agent.store
    svc = add_service(store)
    run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
    store.insert_log_lines(_lines(run.id, "Unit Test", 3000))  # "failed" every 10th line
    store.insert_log_lines(_lines(run.id, "Build", 9))  # none: all "ok"
    url = f"/api/v1/runs/{run.id}/logs/first-error"
    with api.client(Role.viewer) as c:
        found = c.get(url, params={"stage": "Unit Test"}).json()
        none = c.get(url, params={"stage": "Build"}).json()
        unknown_stage = c.get(url, params={"stage": "Nope"})
        unknown_run = c.get(f"/api/v1/runs/{run.id + 99}/logs/first-error",
                            params={"stage": "Build"})
    assert found["line"]["number"] == 10 and found["line"]["text"].startswith("test_10 ")
    assert none == {"line": None, "context": None}
    assert unknown_stage.status_code == 422
    assert unknown_run.status_code == 404


def test_search_and_first_error_send_the_lines_around_the_line_found(api: LiveApi):
    """`context=N`: the lines a viewer shows around the match come in the same answer."""
    store = api.agent.store
    svc = add_service(store)
    run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
    store.insert_log_lines(_lines(run.id, "Unit Test", 3000))  # Needle every 10th line
    store.insert_log_lines(_lines(run.id, "Build", 50))  # another stage: never sent
    base = f"/api/v1/runs/{run.id}/logs"
    unit = {"stage": "Unit Test"}
    with api.client(Role.viewer) as c:
        first = c.get(f"{base}/search", params={**unit, "q": "needle", "context": 4}).json()
        back = c.get(f"{base}/search", params={**unit, "q": "needle", "context": 4,
                                               "before": first["matches"][3]["id"]}).json()
        onward = c.get(f"{base}/search", params={**unit, "q": "needle", "context": 20,
                                                 "after": first["matches"][-1]["id"]}).json()
        plain = c.get(f"{base}/search", params={**unit, "q": "needle"}).json()
        error = c.get(f"{base}/first-error", params={**unit, "context": 3}).json()
        too_many = c.get(f"{base}/search", params={**unit, "q": "x", "context": 1001})

    def texts(answer: dict) -> list[str]:  # type: ignore[type-arg]
        return [ln["text"].split()[0] for ln in answer["context"]["lines"]]

    # The first match is line 10: the 4 lines before it, it, and the 4 after.
    assert texts(first) == [f"test_{i}" for i in range(6, 15)]
    assert first["context"]["more_before"] and first["context"]["more_after"]
    # Paging back from the 4th match (line 40), the one a reader goes to is line 30.
    assert [m["number"] for m in back["matches"]] == [10, 20, 30]
    assert texts(back) == [f"test_{i}" for i in range(26, 35)]
    # Paging on from the first page's last match (line 1000): around line 1010.
    assert texts(onward) == [f"test_{i}" for i in range(990, 1031)]
    assert texts(error) == [f"test_{i}" for i in range(7, 14)]
    assert plain["context"] is None  # asked for none: none sent
    assert too_many.status_code == 422


def test_context_says_when_it_reaches_either_end_of_the_log(api: LiveApi):
    store = api.agent.store
    svc = add_service(store)
    run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
    store.insert_log_lines(_lines(run.id, "Unit Test", 25))  # Needle on lines 10 and 20
    url = f"/api/v1/runs/{run.id}/logs/search"
    with api.client(Role.viewer) as c:
        wide = c.get(url, params={"stage": "Unit Test", "q": "needle", "context": 9}).json()
        back = c.get(url, params={"stage": "Unit Test", "q": "needle", "context": 5,
                                  "before": "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"}).json()
    assert len(wide["context"]["lines"]) == 19  # lines 1 to 19: exactly 9 each side
    assert not wide["context"]["more_before"] and wide["context"]["more_after"]
    assert [ln["text"].split()[0] for ln in back["context"]["lines"]] == \
        [f"test_{i}" for i in range(15, 26)]
    assert back["context"]["more_before"] and not back["context"]["more_after"]


def test_info_reports_version_run_counts_and_the_docker_engine(api: LiveApi):
    store = api.agent.store
    svc = add_service(store)
    for status in (RunStatus.success, RunStatus.awaiting_approval):
        run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1")
        store.set_run_status(run.id, status)
    with api.client(Role.viewer) as c:
        info = c.get("/api/v1/info").json()
        health = c.get("/healthz").json()
    with api.client(None) as anonymous:
        assert anonymous.get("/api/v1/info").status_code == 401
    assert info["version"] == health["version"]
    assert info["awaiting_approval"] == 1 and info["running"] == 0
    # Stages run in containers only (the suite has an engine): the info names its version.
    assert info["docker"]["state"] == "up"
    assert info["docker"]["detail"].startswith("Docker ")


def test_runs_filter_by_branch_and_status(api: LiveApi):
    store = api.agent.store
    svc = add_service(store)
    for branch, status in (("main", RunStatus.success), ("main", RunStatus.failed),
                           ("feature/x", RunStatus.failed)):
        run = store.create_run(svc.id, trigger=Trigger.push, kind=RunKind.full, sha="abcdef1",
                               branch=branch)
        store.set_run_status(run.id, status)
    with api.client(Role.viewer) as c:
        main = c.get("/api/v1/runs", params={"branch": "main"}).json()["items"]
        failed_x = c.get("/api/v1/runs", params={"branch": "feature/x",
                                                 "status": "failed"}).json()["items"]
    assert [r["number"] for r in main] == [2, 1]
    assert [r["number"] for r in failed_x] == [3]


def test_info_says_the_docker_engine_is_up_with_its_version(tmp_path):
    from agent.api.routes_admin import docker_state
    from agent.config import AgentConfig
    from agent.engine.executors import ExecutorSet

    executors = ExecutorSet(AgentConfig(data_dir=tmp_path, executor="docker"))
    state = docker_state(executors)
    assert state.state == "up" and (state.detail or "").startswith("Docker ")


def test_info_says_the_docker_engine_is_down_when_the_agent_started_without_it(tmp_path):
    """Not "not used": Docker stages and runs wait for it (the TUI header says so)."""
    from agent.api.routes_admin import docker_state
    from agent.config import AgentConfig
    from agent.engine.executors import ExecutorSet

    executors = ExecutorSet(AgentConfig(data_dir=tmp_path, executor="docker",
                                        docker_host=f"unix://{tmp_path}/no-engine.sock"))
    state = docker_state(executors)
    assert state.state == "down", state
    assert "Docker engine unreachable" in (state.detail or ""), state
