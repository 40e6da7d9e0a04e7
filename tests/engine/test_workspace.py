"""Workspaces: bare mirrors fetched (not re-cloned), one checkout per sha, tokens kept
out of every file and log."""

from __future__ import annotations

import base64
import http.server
import ssl
import subprocess
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.engine.workspace import WorkspaceError, Workspaces
from store.models import Service
from tests.harness.fakes import ListLog
from tests.sample_repo import make_sample_service_repo


def service(url: str, name: str = "svc") -> Service:
    from datetime import UTC

    now = datetime.now(UTC)
    return Service(id=1, name=name, pipeline="shop", repo_url=url, created_at=now,
                   updated_at=now)


@pytest.fixture
def workspaces(tmp_path: Path) -> Workspaces:
    return Workspaces(tmp_path / "data" / "mirrors", tmp_path / "data" / "workspaces")


def test_second_prepare_fetches_into_the_mirror_and_each_sha_gets_its_workspace(
        tmp_path, workspaces) -> None:
    repo = make_sample_service_repo(tmp_path / "repo")
    first = repo.head_sha
    svc = service(repo.url)
    log = ListLog()
    ws1 = workspaces.prepare(svc, first, log, threading.Event())
    marker = workspaces.mirror_for(svc) / "seamless-marker"
    marker.write_text("same mirror")
    second = repo.set_version("v2")
    log2 = ListLog()
    ws2 = workspaces.prepare(svc, second, log2, threading.Event())
    assert marker.exists(), "the mirror must be fetched, not cloned again"
    assert any("creating the mirror" in ln for ln in log.lines)
    assert not any("creating the mirror" in ln for ln in log2.lines)
    assert any(ln.startswith("fetching") for ln in log2.lines)
    assert ws1 != ws2 and ws1.name == first and ws2.name == second
    assert (ws1 / "app" / "version").read_text() == "v1\n"
    assert (ws2 / "app" / "version").read_text() == "v2\n"
    # A third prepare of an existing sha reuses the checkout.
    assert workspaces.prepare(svc, first, ListLog(), threading.Event()) == ws1


def test_mirrors_get_gits_housekeeping_from_the_maintenance_pass(tmp_path, workspaces) -> None:
    repo = make_sample_service_repo(tmp_path / "repo", "svc")
    svc = service(repo.url)
    for version in ("v2", "v3"):
        workspaces.prepare(svc, repo.set_version(version), ListLog(), threading.Event())
    mirror = workspaces.mirror_for(svc)

    def loose_objects() -> int:
        out = subprocess.run(["git", "count-objects"], cwd=mirror, capture_output=True,
                             text=True, check=True).stdout
        return int(out.split()[0])

    # Enough garbage for git's estimate (it samples objects/17/) to call for a gc.
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for i in range(1500):
        (blobs / str(i)).write_text(f"blob {i}\n")
    subprocess.run(["git", "hash-object", "-w", "--stdin-paths"], cwd=mirror, check=True,
                   input="\n".join(str(blobs / str(i)) for i in range(1500)), text=True,
                   capture_output=True)
    assert loose_objects() > 1500, "fetches leave housekeeping to the maintenance pass"
    for key, value in (("gc.auto", "1"), ("gc.pruneExpire", "now")):
        subprocess.run(["git", "config", key, value], cwd=mirror, check=True)
    workspaces.maintain_mirrors()
    assert loose_objects() == 0
    assert workspaces.prepare(svc, repo.set_version("v4"), ListLog(), threading.Event())


def test_a_sha_no_longer_on_any_branch_is_fetched_or_reported(tmp_path, workspaces) -> None:
    repo = make_sample_service_repo(tmp_path / "repo")
    svc = service(repo.url)
    with pytest.raises(WorkspaceError, match="was not found"):
        workspaces.prepare(svc, "ab" * 20, ListLog(), threading.Event())


def test_pull_request_heads_are_fetched(tmp_path, workspaces) -> None:
    repo = make_sample_service_repo(tmp_path / "repo")
    repo.branch("feature")
    pr_sha = repo.commit("pr change", {"pr.txt": "x\n"})
    repo.checkout("main")
    subprocess.run(["git", "update-ref", "refs/pull/7/head", pr_sha], cwd=repo.path, check=True)
    subprocess.run(["git", "branch", "-D", "feature"], cwd=repo.path, check=True,
                   capture_output=True)
    ws = workspaces.prepare(service(repo.url), pr_sha, ListLog(), threading.Event())
    assert (ws / "pr.txt").exists()


def test_commit_queries_and_branch_resolution(tmp_path, workspaces) -> None:
    repo = make_sample_service_repo(tmp_path / "repo")
    first = repo.head_sha
    second = repo.set_version("v2")
    svc = service(repo.url)
    workspaces.prepare(svc, second, ListLog(), threading.Event())
    info = workspaces.commit_info(svc, second)
    assert info is not None and info.message == "release v2"
    assert [c.sha for c in workspaces.commits_between(svc, first, second)] == [second]
    assert workspaces.commit_info(svc, "cd" * 20) is None
    assert workspaces.resolve_branch(repo.url, "main") == second
    assert workspaces.resolve_branch(repo.url, "nope") is None


def test_paths_never_escape_the_data_dir(workspaces) -> None:
    svc = service("/srv/git/../../etc")
    assert workspaces.workspaces_dir in workspaces.path_for(svc, "ab12").parents
    for sha in ("../../x", "ab/../..", "ab12/.."):
        with pytest.raises(WorkspaceError):
            workspaces.path_for(svc, sha)


def test_cleanup_removes_old_workspaces(tmp_path, workspaces) -> None:
    repo = make_sample_service_repo(tmp_path / "repo")
    ws = workspaces.prepare(service(repo.url), repo.head_sha, ListLog(), threading.Event())
    assert workspaces.cleanup(timedelta(hours=1)) == 0
    assert workspaces.cleanup(timedelta(seconds=-1)) == 1
    assert not ws.exists()


def test_token_is_sent_as_a_header_and_never_written(tmp_path, monkeypatch) -> None:
    token = "ghp_TopSecretToken123"
    repo = make_sample_service_repo(tmp_path / "repo")
    served = tmp_path / "served"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(served / "svc.git")],
                   check=True)
    subprocess.run(["git", "update-server-info"], cwd=served / "svc.git", check=True)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    seen: list[str | None] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GIT_SSL_NO_VERIFY", "1")  # self-signed test certificate
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/svc.git"
        workspaces = Workspaces(tmp_path / "m", tmp_path / "w", github_token=token)
        log = ListLog()
        ws = workspaces.prepare(service(url), repo.head_sha, log, threading.Event())
    finally:
        server.shutdown()
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert seen and all(h == expected for h in seen)
    files = [*Path(tmp_path / "m").rglob("config"), ws / ".git" / "config"]
    for path in files:
        text = path.read_text()
        assert token not in text and expected.split()[1] not in text, path
    assert not any(token in ln or "x-access-token" in ln for ln in log.lines)


def test_services_of_one_repository_share_its_mirror_and_each_commits_checkout(
        tmp_path, workspaces) -> None:
    repo = make_sample_service_repo(tmp_path / "repo")
    api, web = service(repo.url, "api"), service(repo.url + "/", "web")  # another spelling
    log = ListLog()
    first = workspaces.prepare(api, repo.head_sha, log, threading.Event())
    again = ListLog()
    assert workspaces.prepare(web, repo.head_sha, again, threading.Event()) == first
    assert workspaces.mirror_for(api) == workspaces.mirror_for(web)
    assert any("creating the mirror" in ln for ln in log.lines)
    assert not any("creating the mirror" in ln for ln in again.lines)
    assert any("already at" in ln for ln in again.lines)
    other = service(str(tmp_path / "other"), "other")
    assert workspaces.mirror_for(other) != workspaces.mirror_for(api)


async def test_an_older_agents_per_service_mirrors_are_removed_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import logging

    from tests.harness import Fakes, agent_running

    repo = make_sample_service_repo(tmp_path / "repo")
    data = tmp_path / "data"
    current = Workspaces(data / "mirrors", data / "workspaces")
    shared = current.prepare(service(repo.url, "api"), repo.head_sha, ListLog(),
                             threading.Event())  # today's layout: mirror per repository
    for name in ("api", "web"):  # before mirrors were shared: one per service
        subprocess.run(["git", "clone", "-q", "--mirror", repo.url,
                        str(data / "mirrors" / f"{name}.git")], check=True)
    # An old-layout checkout of web still borrows its mirror's objects: web.git stays.
    old_checkout = data / "workspaces" / "web" / repo.head_sha
    subprocess.run(["git", "init", "-q", str(old_checkout)], check=True)
    (old_checkout / ".git" / "objects" / "info" / "alternates").write_text(
        f"{data / 'mirrors' / 'web.git' / 'objects'}\n")
    (data / "mirrors" / "notes.git").mkdir()  # not a repository: not ours to remove
    (data / "mirrors" / "notes.git" / "keep").write_text("x")

    caplog.set_level(logging.INFO, logger="agent.engine.workspace")
    async with agent_running(data, fakes=Fakes()):
        for _ in range(200):  # the maintenance pass runs right after start
            if not (data / "mirrors" / "api.git").exists():
                break
            await asyncio.sleep(0.05)
    assert not (data / "mirrors" / "api.git").exists()
    assert (data / "mirrors" / "web.git" / "HEAD").is_file()
    assert (data / "mirrors" / "notes.git" / "keep").is_file()
    assert current.mirror_for(service(repo.url, "api")).is_dir()
    assert (shared / "app" / "version").read_text() == "v1\n"
    assert any("removed 1 per-service git mirror(s) left from before mirrors were shared "
               "per repository: api.git" in r.getMessage() for r in caplog.records)
    assert not any("notes.git" in r.getMessage() for r in caplog.records)  # left alone
