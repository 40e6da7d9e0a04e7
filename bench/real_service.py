"""A real Python service through the pipeline, twice, against the same steps by hand.

The fixture service (a git repo made here): `requirements.txt` (pytest, requests),
unit tests run with a real `pip install -r requirements.txt && pytest`, a Dockerfile
that pip-installs the same requirements, a compose file publishing a fixed port
("PORT:PORT") and an integration test on the compose network. Everything runs in
`seamless/python:3` (`make python-image`: debootstrap + `docker import`, cached on the
host) against a package index served from disk over HTTP (wheels fetched once into a
cache folder with `pip download`), with PyPI's cache headers (so pip's HTTP cache keeps
the wheels, as it does PyPI's). The index listens on the Docker bridge's gateway,
the host address stage and build containers can reach (the host's loopback is not
theirs).

The agent is `seamless-agent serve` in its own process (bench/_agent.py), driven over
its REST API as a user's script would: nothing of the bench shares its interpreter.

- first_s: the agent's full run of commit A, caches cold (fresh dependency cache, a
  Dockerfile nonce no build has cached);
- second_s: the agent's full run of commit B (an app change): the dependency caches
  (pip's downloads, and the installed dependencies run A's Unit Test kept — so its `pip
  install` finds every requirement satisfied) and the layer cache warm. cache_ratio =
  second_s / first_s (goal <= 0.5); `--installed-deps-keep 0` measures without the
  installed dependencies (pip's download cache only);
- hand_s: the same steps as a shell script (`docker run` install + test, `docker
  build`, `docker-compose up` + test, `docker-compose down`), caches cold (its own
  nonce, its own pip cache). overhead_ratio = first_s / hand_s (goal <= 1.05).

`--rounds N` (default 4) repeats the three, alternating whether the script or the agent
goes first (each timed part starts after a `sync`); the figures are medians (ratios: the
median of each round's ratio). The table also gives each stage's and each step's median
seconds, the wheels a warm run fetched again (0: the pip cache was hit), and the load
average.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from _common import REPO_ROOT, git, make_repo, parser, report

from bench._agent import ServedAgent
from store.models import FINISHED_RUN_STATUSES

IMAGE = "seamless/python:3"
REQUIREMENTS = ["pytest", "requests"]
CACHE = Path(os.environ.get("SEAMLESS_BENCH_CACHE", Path.home() / ".cache" / "seamless-bench"))


def ensure_image() -> None:
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(REPO_ROOT / "scripts" / "build-python-image.sh")], check=True)


def wheels() -> Path:
    """The requirements' wheels, downloaded once; an index page linking each."""
    folder = CACHE / "wheels"
    if not any(folder.glob("*.whl")):
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3", "-m", "pip", "download", "-q", "-d", str(folder),
                        "--only-binary=:all:", "--python-version", "3.11", *REQUIREMENTS],
                       check=True)
    links = "".join(f'<a href="{p.name}">{p.name}</a>\n' for p in sorted(folder.glob("*.whl")))
    (folder / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return folder


def bridge_gateway() -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[3].split("/")[0]


def serve(folder: Path, host: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/"


def settle() -> None:
    """Before each timed part: what the last one wrote goes to disk now, not while the
    next one runs (whichever went second was the slower, agent or script alike)."""
    os.sync()


def free_port() -> int:
    """A port nothing listens on now (the by-hand compose publishes it on 0.0.0.0)."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the wheels as PyPI does: files cacheable for ever (pip's HTTP cache keeps
    them, as it keeps PyPI's), the link page for 10 minutes. Counts wheel downloads,
    so the table shows whether a warm run fetched anything again."""

    downloads = 0
    _lock = threading.Lock()

    def do_GET(self) -> None:
        if self.path.endswith(".whl"):
            with QuietHandler._lock:
                QuietHandler.downloads += 1
        super().do_GET()

    def end_headers(self) -> None:
        immutable = self.path.endswith(".whl")
        self.send_header("Cache-Control", "max-age=365000000, immutable, public"
                         if immutable else "max-age=600, public")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def service_files(index: str, port: int, nonce: str, version: str) -> dict[str, str]:
    host = index.split("//")[1].split(":")[0]
    pip = f"pip install -q --no-index --trusted-host {host} --find-links {index}"
    return {
        "requirements.txt": "\n".join(REQUIREMENTS) + "\n",
        "app.py": (
            "import http.server\n"
            "class H(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            f"        body = b'ok {version}'\n"
            "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
            f"http.server.HTTPServer(('', {port}), H).serve_forever()\n"),
        "tests/test_app.py": ("import requests\n\n\ndef test_requests_is_there():\n"
                              "    assert requests.__version__\n"),
        "tests/integration.py": (
            "import time, urllib.request\n"
            "for _ in range(100):\n"
            "    try:\n"
            f"        print(urllib.request.urlopen('http://app:{port}/').read().decode())\n"
            "        break\n"
            "    except OSError:\n"
            "        time.sleep(0.1)\n"
            "else:\n"
            "    raise SystemExit('app never answered')\n"),
        "Dockerfile": (
            f"FROM {IMAGE}\n"
            f"LABEL bench.nonce={nonce}\n"
            "COPY requirements.txt /app/requirements.txt\n"
            f"RUN {pip} -r /app/requirements.txt\n"
            "COPY app.py /app/app.py\n"
            "STOPSIGNAL SIGKILL\n"
            'CMD ["python3", "/app/app.py"]\n'),
        "compose.yaml": (
            "services:\n"
            "  app:\n"
            "    build: .\n"
            "    image: ${APP_IMAGE:-bench-app}\n"
            f'    ports: ["{port}:{port}"]\n'),
    }


def write(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def pip_env(index: str, flag: str = "") -> str:
    """pip's settings for the loopback index, as `NAME=value` words (`-e NAME=value`)."""
    host = index.split("//")[1].split(":")[0]
    return " ".join(f"{flag}{name}={value}" for name, value in (
        ("PIP_NO_INDEX", "1"), ("PIP_FIND_LINKS", index), ("PIP_TRUSTED_HOST", host)))


def by_hand(repo: Path, work: Path, index: str) -> tuple[float, dict[str, float]]:
    """The same steps as a shell script, cold caches of its own. Each step prints a
    timestamped mark, so the table can set the agent's stages against them."""
    tag = f"bench-hand-{uuid.uuid4().hex[:8]}:1"
    project = f"benchhand{uuid.uuid4().hex[:8]}"
    clone = work / "hand"
    compose = f"APP_IMAGE={tag} docker-compose -p {project} -f {clone}/compose.yaml"

    def step(name: str) -> str:
        return f"echo \"@step {name} $EPOCHREALTIME\""

    script = "\n".join([
        "set -e",
        step("checkout"),
        f"git clone -q {repo} {clone}",
        step("unit_test"),
        f"docker run --rm -v {clone}:/workspace -w /workspace -v {work}/cache:/cache "
        f"-e PIP_CACHE_DIR=/cache/pip {pip_env(index, '-e ')} {IMAGE} "
        "sh -c 'pip install -q -r requirements.txt && python3 -m pytest -q tests'",
        step("build"),
        f"docker build -q -t {tag} {clone} >/dev/null",
        f"trap '{step('compose_down')}; {compose} down -v --timeout 5; {step('end')}' EXIT",
        step("compose_up"),
        f"{compose} up -d",
        step("integration_test"),
        f"docker run --rm --network {project}_default -v {clone}:/workspace -w /workspace "
        f"{IMAGE} python3 tests/integration.py",
    ])
    settle()
    began = time.perf_counter()
    try:
        done = subprocess.run(["bash", "-xc", script], capture_output=True, text=True)
        elapsed = time.perf_counter() - began
    finally:  # the agent keeps its image (deploys use it): not a step to time here either
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    if done.returncode != 0:  # say which step failed and what it printed
        raise SystemExit(f"the by-hand script failed (exit {done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")
    marks = [line.split()[1:] for line in done.stdout.splitlines()
             if line.startswith("@step ")]
    return elapsed, {name.replace("_", " "): float(then) - float(at)
                     for (name, at), (_, then) in zip(marks, marks[1:], strict=False)}


KEPT_USED = "installed dependencies: starting from"


RUN_BOUND_S = 900.0
POLL_S = 0.1  # the run's status over the API (the agent is a process of its own)
FINAL = {status.value for status in FINISHED_RUN_STATUSES}


@dataclass
class AgentRun:
    seconds: float
    stages: dict[str, float]  # stage -> seconds
    downloads: int  # wheels fetched from the index during the run
    kept_used: bool  # Unit Test started from the installed dependencies an earlier run kept


def agent_runs(repo: Path, root: Path, index: str, shas: list[str],
               installed_keep: int | None) -> list[AgentRun]:
    """`seamless-agent serve` as a user runs it (its own process, driven over the REST
    API): one service, a partial run of each sha in turn. `installed_keep`: the agent's
    `installed_deps_keep` (None: its default; 0: installed dependencies are not kept)."""
    repository = f"seamless-bench/real-{uuid.uuid4().hex[:8]}"
    settings = {} if installed_keep is None else {"installed_deps_keep": installed_keep}
    agent = ServedAgent(root / "data", **settings)
    try:
        agent.add_service(
            str(repo), stage_image=IMAGE,
            unit_test_command="pip install -q -r requirements.txt && python3 -m pytest -q tests",
            compose_file="compose.yaml", integration_test_command="python3 tests/integration.py",
            env=dict(item.split("=", 1) for item in pip_env(index).split()),
            image_repository=repository)
        runs = []
        with agent.client() as client:
            for sha in shas:
                settle()
                fetched = QuietHandler.downloads
                began = time.perf_counter()
                run = client.post("/api/v1/services/svc/trigger", json={
                    "sha": sha, "branch": "main", "kind": "partial"})
                run.raise_for_status()
                run_id = run.json()["id"]
                while True:
                    done = client.get(f"/api/v1/runs/{run_id}").json()
                    if done["status"] in FINAL:
                        break
                    if time.perf_counter() - began > RUN_BOUND_S:
                        raise SystemExit(f"run {run_id} still {done['status']} after "
                                         f"{RUN_BOUND_S:g} s")
                    time.sleep(POLL_S)
                seconds = time.perf_counter() - began
                if done["status"] != "success":
                    raise SystemExit(f"run {run_id} ended {done['status']}: {done['error']}")
                unit_log = client.get(f"/api/v1/runs/{run_id}/logs",
                                      params={"stage": "Unit Test"}).json()["lines"]
                runs.append(AgentRun(seconds, {
                    st["name"]: (datetime.fromisoformat(st["finished_at"])
                                 - datetime.fromisoformat(st["started_at"])).total_seconds()
                    for st in done["stages"] if st["started_at"] and st["finished_at"]},
                    QuietHandler.downloads - fetched,
                    any(KEPT_USED in line["text"] for line in unit_log)))
            # The installed dependencies kept (images) go as a user clears them.
            client.delete("/api/v1/services/svc/cache").raise_for_status()
        return runs
    finally:
        agent.stop()
        for sha in shas:  # also when a run failed: no bench image is left behind
            subprocess.run(["docker", "rmi", "-f", f"{repository}:{sha}"], capture_output=True)


@dataclass
class Round:
    first: AgentRun
    second: AgentRun
    hand_s: float
    hand_steps: dict[str, float]


def one_round(root: Path, index: str, hand_first: bool, installed_keep: int | None) -> Round:
    """The agent's two runs and the script, each with cold caches of its own (fresh
    nonces, fresh dependency caches); which goes first alternates between rounds, so
    neither always finds the host's page cache warmed by the other."""
    port = free_port()  # the repo's "fixed" port: free on this host, not the index's
    hand_repo = make_repo(root / "hand-repo")
    write(hand_repo, service_files(index, port, uuid.uuid4().hex, "v1"), "service")
    repo = make_repo(root / "repo")
    nonce = uuid.uuid4().hex
    first = write(repo, service_files(index, port, nonce, "v1"), "service")
    second = write(repo, {"app.py": service_files(index, port, nonce, "v2")["app.py"]},
                   "app change")
    if hand_first:
        hand = by_hand(hand_repo, root / "hand-work", index)
    runs = agent_runs(repo, root, index, [first, second], installed_keep)
    if not hand_first:
        hand = by_hand(hand_repo, root / "hand-work", index)
    return Round(runs[0], runs[1], *hand)


def median_of(values: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(v[name] for v in values if name in v)
            for name in dict.fromkeys(name for v in values for name in v)}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rounds", type=int, default=4,
                   help="rounds of (agent cold + warm, by hand), who goes first alternating "
                        "(an even number: each order as often); medians are reported")
    p.add_argument("--installed-deps-keep", type=int, default=None, metavar="N",
                   help="the agent's installed_deps_keep (default: its own; 0: installed "
                        "dependencies not kept, the baseline before they were)")
    args = p.parse_args()
    load = os.getloadavg()  # the figures mean little on a busy host: say how busy
    ensure_image()
    server, index = serve(wheels(), bridge_gateway())
    rounds: list[Round] = []
    try:
        for number in range(args.rounds):
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
                rounds.append(one_round(Path(tmp), index, hand_first=number % 2 == 0,
                                        installed_keep=args.installed_deps_keep))
    finally:
        server.shutdown()
    first_s = statistics.median(r.first.seconds for r in rounds)
    second_s = statistics.median(r.second.seconds for r in rounds)
    hand_s = statistics.median(r.hand_s for r in rounds)
    # Ratios of the same round (measured minutes apart, under the same load), then the median.
    cache_ratio = statistics.median(r.second.seconds / r.first.seconds for r in rounds)
    overhead_ratio = statistics.median(r.first.seconds / r.hand_s for r in rounds)
    refetched = max(r.second.downloads for r in rounds)
    kept_used = sum(r.second.kept_used for r in rounds)
    figures = {"first_s": round(first_s, 3), "second_s": round(second_s, 3),
               "cache_ratio": round(cache_ratio, 3), "hand_s": round(hand_s, 3),
               "overhead_ratio": round(overhead_ratio, 3), "rounds": len(rounds),
               "second_run_downloads": refetched, "second_run_kept_used": kept_used,
               "load_1m": round(load[0], 2)}
    rows: list[tuple[str, object]] = [
        (f"agent first run, cold caches (s, median of {len(rounds)})", first_s),
        ("agent second run, warm caches (s)", second_s),
        ("second / first (goal <= 0.5)", cache_ratio),
        ("same steps by hand, cold (s)", hand_s),
        ("agent first / hand (goal <= 1.05)", overhead_ratio),
        ("wheels fetched again by a warm run (max)", refetched),
        ("warm runs starting from the kept installed dependencies", f"{kept_used} of "
                                                                     f"{len(rounds)}"),
    ]
    rows += [(f"  round {i + 1}: first / second / hand (s)",
              f"{r.first.seconds:.2f} / {r.second.seconds:.2f} / {r.hand_s:.2f}")
             for i, r in enumerate(rounds)]
    for label, stages in (("run 1", median_of([r.first.stages for r in rounds])),
                          ("run 2", median_of([r.second.stages for r in rounds])),
                          ("by hand", median_of([r.hand_steps for r in rounds]))):
        rows += [(f"  {label}: {name} (s, median)", secs) for name, secs in stages.items()]
    rows.append(("load average (1 min) before / after",
                 f"{load[0]:.2f} / {os.getloadavg()[0]:.2f}"))
    report("real Python service: full run, cold then warm, vs by hand", rows, figures,
           args.json)


if __name__ == "__main__":
    main()
