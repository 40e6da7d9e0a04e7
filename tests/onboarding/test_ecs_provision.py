"""`env provision` / `env teardown` against moto in server mode over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from agent.onboarding.ecs_facts import SizeFlags
from agent.onboarding.ecs_provision import provision, teardown
from store.models import EcsTargetConfig, HealthCheck, NoTargetConfig, Pipeline, Service

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def _pipeline(endpoint: str) -> Pipeline:
    target = {"cluster": "shop-staging", "region": "us-east-1", "endpoint_url": endpoint}
    return Pipeline(id=1, created_at=NOW, updated_at=NOW, name="shop",
                    staging=EcsTargetConfig(**target),
                    production=EcsTargetConfig(**{**target, "cluster": "shop-prod"}))


def _service(name: str, port: int = 8080, **kw) -> Service:
    return Service(id=hash(name) % 1000, created_at=NOW, updated_at=NOW, name=name,
                   pipeline="shop", repo_url=f"https://github.com/acme/{name}.git",
                   image_repository=f"123.dkr.ecr.us-east-1.amazonaws.com/{name}",
                   container_port=port, **kw)


def _ecs(endpoint: str):
    return boto3.client("ecs", region_name="us-east-1", endpoint_url=endpoint)


def _state(endpoint: str) -> dict:
    """Everything provisioning could have created, to compare before/after."""
    ecs = _ecs(endpoint)
    sd = boto3.client("servicediscovery", region_name="us-east-1", endpoint_url=endpoint)
    clusters = [c["clusterArn"] for c in ecs.describe_clusters(
        clusters=ecs.list_clusters()["clusterArns"])["clusters"] if c["status"] == "ACTIVE"]
    return {
        "clusters": sorted(clusters),
        "services": sorted(a for c in clusters for a in ecs.list_services(cluster=c)[
            "serviceArns"] if _active(ecs, c, a)),
        "task_definitions": sorted(ecs.list_task_definitions(status="ACTIVE")[
            "taskDefinitionArns"]),
        "namespaces": sorted(n["Name"] for n in sd.list_namespaces()["Namespaces"]),
    }


def _active(ecs, cluster: str, arn: str) -> bool:
    found = ecs.describe_services(cluster=cluster, services=[arn])["services"]
    return bool(found) and found[0]["status"] == "ACTIVE"


@pytest.fixture
def session(aws: str) -> boto3.Session:
    return boto3.Session(region_name="us-east-1")


def test_provision_creates_cluster_namespace_task_definitions_and_services(
        aws: str, session: boto3.Session) -> None:
    services = [_service("payments"), _service("orders", port=9000)]
    steps = provision(session, _pipeline(aws), services, "staging")
    assert [(s.verb, s.kind) for s in steps] == [
        ("create", "namespace"), ("create", "cluster"),
        ("register", "task-definition"), ("create", "service"),
        ("register", "task-definition"), ("create", "service")]
    ecs = _ecs(aws)
    svc = ecs.describe_services(cluster="shop-staging", services=["payments-staging"],
                                include=["TAGS"])["services"][0]
    assert {t["key"]: t["value"] for t in svc["tags"]} == {
        "seamless:managed": "true", "seamless:pipeline": "shop", "seamless:env": "staging"}
    assert svc["launchType"] == "FARGATE" and svc["desiredCount"] == 1
    td = ecs.describe_task_definition(taskDefinition="orders-staging")["taskDefinition"]
    container = td["containerDefinitions"][0]
    assert container["image"].endswith("/orders:latest")
    assert container["portMappings"][0]["containerPort"] == 9000
    assert "http://localhost:9000/health" in container["healthCheck"]["command"][1]
    assert (td["cpu"], td["memory"]) == ("256", "512")
    assert "shop-staging" in _state(aws)["namespaces"]


def test_second_provision_is_a_no_op(aws: str, session: boto3.Session) -> None:
    services = [_service("payments")]
    provision(session, _pipeline(aws), services, "staging")
    before = _state(aws)
    steps = provision(session, _pipeline(aws), services, "staging")
    assert {s.verb for s in steps} == {"keep"}
    assert _state(aws) == before  # no new revision, no new resource


def test_dry_run_prints_the_plan_and_changes_nothing(aws: str, session: boto3.Session) -> None:
    before = _state(aws)
    steps = provision(session, _pipeline(aws), [_service("payments")], "staging", dry_run=True)
    assert [s.verb for s in steps] == ["create", "create", "register", "create"]
    assert "payments-staging" in "\n".join(map(str, steps))
    assert _state(aws) == before


def test_changed_facts_register_a_new_revision_but_keep_the_deployed_image(
        aws: str, session: boto3.Session) -> None:
    provision(session, _pipeline(aws), [_service("payments")], "staging")
    ecs = _ecs(aws)
    # A deploy moved the service to a sha-tagged image; provisioning must not revert it.
    td = ecs.describe_task_definition(taskDefinition="payments-staging")["taskDefinition"]
    deployed = {k: td[k] for k in ("family", "requiresCompatibilities", "networkMode", "cpu",
                                   "memory", "containerDefinitions")}
    deployed["containerDefinitions"][0]["image"] = "repo/payments:" + "a" * 40
    ecs.register_task_definition(**deployed)
    steps = provision(session, _pipeline(aws), [_service("payments")], "staging",
                      flags=SizeFlags(cpu=512, memory=1024, desired_count=2))
    assert [(s.verb, s.kind) for s in steps][-2:] == [
        ("register", "task-definition"), ("update", "service")]
    td = ecs.describe_task_definition(taskDefinition="payments-staging")["taskDefinition"]
    assert td["revision"] == 3 and (td["cpu"], td["memory"]) == ("512", "1024")
    assert td["containerDefinitions"][0]["image"] == "repo/payments:" + "a" * 40
    svc = ecs.describe_services(cluster="shop-staging", services=["payments-staging"])
    assert svc["services"][0]["desiredCount"] == 2
    # Flags left out next time keep what the earlier flags set.
    again = provision(session, _pipeline(aws), [_service("payments")], "staging")
    assert {s.verb for s in again} == {"keep"}


def test_services_without_an_ecs_target_are_skipped(aws: str, session: boto3.Session) -> None:
    local = _service("local", staging=NoTargetConfig())
    steps = provision(session, _pipeline(aws), [local], "staging")
    assert [(s.verb, s.name) for s in steps] == [("skip", "local")]


def test_image_health_check_none_leaves_the_images_own(aws: str, session: boto3.Session) -> None:
    svc = _service("payments", health_check=HealthCheck(path=None))
    provision(session, _pipeline(aws), [svc], "staging")
    td = _ecs(aws).describe_task_definition(taskDefinition="payments-staging")["taskDefinition"]
    assert "healthCheck" not in td["containerDefinitions"][0]


def test_teardown_removes_what_it_created_and_leaves_untagged_resources(
        aws: str, session: boto3.Session) -> None:
    ecs = _ecs(aws)
    ecs.create_cluster(clusterName="hand-made")
    ecs.register_task_definition(family="hand-made-td", containerDefinitions=[
        {"name": "x", "image": "busybox", "memory": 64}])
    pipeline = _pipeline(aws)
    provision(session, pipeline, [_service("payments")], "staging")
    # An untagged service in our cluster (made by hand) must survive, and so the cluster.
    ecs.create_service(cluster="shop-staging", serviceName="manual", desiredCount=0,
                       taskDefinition="hand-made-td")
    steps = teardown(session, pipeline, [_service("payments")], "staging")
    verbs = {(s.verb, s.kind) for s in steps}
    assert ("delete", "service") in verbs and ("delete", "task-definition") in verbs
    state = _state(aws)
    assert any(a.endswith("/hand-made") for a in state["clusters"])
    assert any("hand-made-td" in a for a in state["task_definitions"])
    assert not any("payments-staging" in a for a in state["task_definitions"])
    assert [a.rsplit("/", 1)[-1] for a in state["services"]] == ["manual"]
    assert ("keep", "cluster") in verbs  # still runs "manual"
    ecs.delete_service(cluster="shop-staging", service="manual", force=True)
    steps = teardown(session, pipeline, [_service("payments")], "staging")
    assert ("delete", "cluster") in {(s.verb, s.kind) for s in steps}
    state = _state(aws)
    assert [a.rsplit("/", 1)[-1] for a in state["clusters"]] == ["hand-made"]
    assert state["namespaces"] == []


def test_teardown_dry_run_deletes_nothing(aws: str, session: boto3.Session) -> None:
    provision(session, _pipeline(aws), [_service("payments")], "staging")
    before = _state(aws)
    steps = teardown(session, _pipeline(aws), [_service("payments")], "staging", dry_run=True)
    assert {s.verb for s in steps} == {"delete"}
    assert _state(aws) == before
