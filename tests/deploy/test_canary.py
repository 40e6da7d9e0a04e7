"""Canary deploys through the HAProxy front, judged by the front's own figures."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from agent.deploy.front_api import FrontApi, parse_stat
from agent.logs.logger import LoggingStageLog
from store.models import CanaryConfig, DeploymentStatus, DockerTargetConfig
from tests.deploy.conftest import build_image, cgi_script, make_run, make_service
from tests.deploy.hammer import Hammer
from tests.harness import wait_until
from tests.helpers import unique_name

# Short bakes keep the suite fast; at ~10% of a busybox CGI's traffic a step still sees
# well over min_requests canary requests in 2 s.
CANARY = CanaryConfig(steps=[10, 50, 100], bake_s=2, min_requests=8, hold_timeout_s=60)
# A build failing 20 % of its requests passes a step when ≤ 5 % of the step's requests
# failed: with 8 (none failed) 17 % of the time — on a loaded machine step 1 saw only ~8
# and the build was stopped at step 2. With 60 it is 0.1 % (binomial, ≤ 3 of 60). (The
# slow build's p95 needs min_latency_samples anyway: every request of it is slow.)
ERRORS_CANARY = CANARY.model_copy(update={"min_requests": 60})

BUILDS = {"v1": {}, "good": {}, "errors": {"error_percent": 20}, "slow": {"delay_s": 0.3},
          "stalls_once": {"first_delay_s": 1.5}}


@pytest.fixture(scope="module")
def canary_images(docker_client, base_image) -> Iterator[dict[str, tuple[str, str]]]:
    repo = unique_name("seamless-test/canary")
    images = {}
    for i, (name, kwargs) in enumerate(BUILDS.items()):
        sha = f"{i + 1}" * 40
        tag = f"{repo}:{sha}"
        images[name] = (sha, build_image(docker_client, tag, name,
                                         cgi=cgi_script(name, **kwargs)))  # type: ignore[arg-type]
    yield images
    for _, tag in images.values():
        docker_client.images.remove(tag, force=True)


def _service(store, images, canary: CanaryConfig = CANARY):
    return make_service(store, images["v1"][1].rsplit(":", 1)[0],
                        production=DockerTargetConfig(strategy="canary", canary=canary))


def _deploy(deployer, store, pipeline, service, pair):
    sha, image = pair
    log = LoggingStageLog("test")
    run = make_run(store, service, sha)
    return deployer.deploy_stage(run, service, pipeline, "production", image, log), log


def _url(store, service) -> str:
    dep = store.current_deployment(service.id, "production")
    return store.deployment_target_state(dep.id)["address"] + "/cgi-bin/version"


def _weights(fronts_dir, service) -> dict[str, int]:
    api = FrontApi(fronts_dir / f"{service.name}-production" / "run")
    return {c: s.weight for c, s in parse_stat(api("show stat")).items()}


def _measurements(store, service):
    dep = store.list_deployments(service_id=service.id, environment="production")[0]
    return dep, store.list_canary_measurements(dep.id)


@pytest.mark.parametrize("build, rule", [("errors", "error rate"), ("slow", "p95")])
def test_a_bad_canary_is_stopped_at_its_first_step_with_its_figures(
        deployer, store, canary_images, fronts_dir, docker_client, build, rule):
    cfg = ERRORS_CANARY if build == "errors" else CANARY
    pipeline, service = _service(store, canary_images, cfg)
    assert _deploy(deployer, store, pipeline, service, canary_images["v1"])[0].ok
    url = _url(store, service)
    with Hammer(url) as hammer:
        wait_until(lambda: hammer.ok > 20, what="traffic before the canary")
        result, log = _deploy(deployer, store, pipeline, service, canary_images[build])
        seen = hammer.ok
        wait_until(lambda: hammer.ok > seen + 20, what="traffic after the abort")
        after_abort = dict(hammer.bodies)
        wait_until(lambda: hammer.ok > seen + 40, what="more traffic after the abort")
    assert not result.ok and "canary stopped" in result.error and "step 1 (10%)" in result.error
    assert rule in result.error, result.error
    dep, figures = _measurements(store, service)
    assert dep.status is DeploymentStatus.failed and rule in dep.error
    assert {m.step for m in figures} == {1}
    canary = [m for m in figures if m.role == "canary"][-1]  # earlier ones may have held
    assert (canary.verdict, canary.weight) == ("fail", 10) and rule in canary.rule
    assert canary.requests >= cfg.min_requests and canary.p95_ms is not None
    assert any("verdict: fail" in line for line in log.lines)
    assert any(f"{canary.requests} requests" in line for line in log.lines), log.lines
    # All traffic is back on stable, the canary is gone.
    assert hammer.bodies[build] == after_abort.get(build, 0)
    assert set(_weights(fronts_dir, service).values()) == {100, 0}
    assert store.current_deployment(service.id, "production").sha == canary_images["v1"][0]
    colours = docker_client.containers.list(all=True, filters={"label": [
        f"io.seamless.service={service.name}", "io.seamless.colour"]})
    assert len(colours) == 1


# "stalls_once": its very first request takes 1.5 s, the rest are as fast as v1's. A
# latency verdict needs min_latency_samples (20) timed requests, so the p95 is never
# that one request (before, a window of 8 failed the build on it: "p95 1500 ms > …").
@pytest.mark.parametrize("build", ["good", "stalls_once"])
def test_a_good_canary_is_promoted_through_every_step(
        deployer, store, canary_images, fronts_dir, build):
    cfg = ERRORS_CANARY if build == "errors" else CANARY
    pipeline, service = _service(store, canary_images, cfg)
    assert _deploy(deployer, store, pipeline, service, canary_images["v1"])[0].ok
    url = _url(store, service)
    with Hammer(url) as hammer:
        wait_until(lambda: hammer.ok > 20, what="traffic before the canary")
        result, log = _deploy(deployer, store, pipeline, service, canary_images[build])
        seen = hammer.ok
        wait_until(lambda: hammer.ok > seen + 20, what="traffic after the promotion")
    assert result.ok, log.lines
    assert hammer.failed == 0, hammer.errors
    _, figures = _measurements(store, service)
    # Each step ends with a pass (a busy machine may first hold a step: inconclusive).
    last = {(m.step, m.role): (m.weight, m.verdict) for m in figures}
    assert last == {(1, "canary"): (10, "pass"), (1, "stable"): (10, "pass"),
                    (2, "canary"): (50, "pass"), (2, "stable"): (50, "pass")}
    assert {m.verdict for m in figures} <= {"pass", "inconclusive"}
    assert hammer.bodies[build] > 0
    assert sorted(_weights(fronts_dir, service).values()) == [0, 100]
    assert store.current_deployment(service.id, "production").sha == canary_images[build][0]
    # A rollback is the way out: it switches at once, never through the canary's steps.
    started = deployer.rollback(service, "production", canary_images["v1"][0], actor="ops")
    deployer.wait_idle(60)
    back = store.get_deployment(started.id)
    assert back.status is DeploymentStatus.active, back.error
    assert store.list_canary_measurements(back.id) == []
    assert sorted(_weights(fronts_dir, service).values()) == [0, 100]


def test_without_traffic_a_step_is_inconclusive_and_holds_until_aborted(
        deployer, store, canary_images, fronts_dir):
    pipeline, service = _service(store, canary_images)
    assert _deploy(deployer, store, pipeline, service, canary_images["v1"])[0].ok
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(
        _deploy(deployer, store, pipeline, service, canary_images["good"])))
    thread.start()
    try:
        wait_until(lambda: len(_measurements(store, service)[1]) >= 4, timeout=60,
                   what="two inconclusive windows")
        _, figures = _measurements(store, service)
        assert {(m.step, m.verdict) for m in figures} == {(1, "inconclusive")}
        assert "min_requests" in figures[0].rule
        assert sorted(_weights(fronts_dir, service).values()) == [10, 90]  # held at step 1
    finally:
        deployer.steer_canary(service, "production", "abort", "alice")
        thread.join(30)
    result, log = outcome[0]
    assert not result.ok and "aborted by alice" in result.error
    assert any("holds at 10%" in line for line in log.lines)
    assert store.current_deployment(service.id, "production").sha == canary_images["v1"][0]
    assert sorted(_weights(fronts_dir, service).values()) == [0, 100]
