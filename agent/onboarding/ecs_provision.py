"""`env provision` / `env teardown`: the Fargate side of a pipeline environment.

Provision creates, idempotently, per cluster of the environment's ECS targets: a Cloud Map
HTTP namespace (`<pipeline>-<env>`, Service Connect: services reach each other by name), the
cluster, and per service a task definition and an ECS service. Everything created is tagged
seamless:managed/pipeline/env; anything found without those tags is left as it is. Teardown
deletes only tagged resources. Each step is read first and written only when needed, so a
second run is a no-op and `dry_run` performs the reads alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import boto3
from botocore.exceptions import ClientError

from agent.deploy.ecs_colours import COLOURS
from agent.onboarding.ecs_facts import (
    DEFAULT_DESIRED_COUNT,
    SizeFlags,
    desired_facts,
    ecs_tags,
    facts_of,
    is_ours,
    service_connect,
    tags,
    task_definition,
)
from store.models import EcsTargetConfig, Pipeline, Service, image_for
from store.store import Store


class ProvisionError(RuntimeError):
    pass


@dataclass
class Step:
    verb: str  # create | register | update | keep | skip | delete
    kind: str  # namespace | cluster | task-definition | service
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.verb:<9} {self.kind:<16} {self.name}" + (f"  ({self.detail})"
                                                                   if self.detail else "")


@dataclass
class Network:
    subnets: list[str] = field(default_factory=list)  # empty: the default VPC's subnets
    security_groups: list[str] = field(default_factory=list)
    assign_public_ip: bool = False
    execution_role_arn: str | None = None


def ecs_target(pipeline: Pipeline, service: Service, env: str) -> EcsTargetConfig | None:
    target = getattr(service, env) or getattr(pipeline, env)
    return target if isinstance(target, EcsTargetConfig) else None


def namespace_name(pipeline: str, env: str) -> str:
    return f"{pipeline}-{env}"


def service_name(service: Service, target: EcsTargetConfig, env: str) -> str:
    return target.service or f"{service.name}-{env}"


class _Run:
    """One provision or teardown pass over one cluster (one AWS endpoint)."""

    def __init__(self, session: boto3.Session, target: EcsTargetConfig, pipeline: str, env: str,
                 dry_run: bool) -> None:
        kw = {"region_name": target.region, "endpoint_url": target.endpoint_url}
        self.ecs = session.client("ecs", **kw)
        self.sd = session.client("servicediscovery", **kw)
        self.ec2 = session.client("ec2", **kw)
        self.cluster = target.cluster
        self.pipeline, self.env, self.dry_run = pipeline, env, dry_run
        self.steps: list[Step] = []
        self.deleted: set[str] = set()  # services removed by this teardown

    def do(self, step: Step, action: Callable[[], Any] | None = None) -> Any:
        """Record a step and, unless this is a dry run, perform it."""
        self.steps.append(step)
        if action is None or self.dry_run:
            return None
        return action()

    # -- reads --------------------------------------------------------------------------------
    def namespace(self) -> dict[str, Any] | None:
        name = namespace_name(self.pipeline, self.env)
        for page in self.sd.get_paginator("list_namespaces").paginate():
            for ns in page["Namespaces"]:
                if ns["Name"] == name:
                    return ns
        return None

    def cluster_info(self) -> dict[str, Any] | None:
        found = self.ecs.describe_clusters(clusters=[self.cluster], include=["TAGS"])["clusters"]
        return next((c for c in found if c.get("status") == "ACTIVE"), None)

    def latest_task_definition(self, family: str) -> dict[str, Any] | None:
        try:
            got = self.ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
        except ClientError:
            return None
        return {**got["taskDefinition"], "tags": got.get("tags", [])}

    def ecs_service(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.ecs.describe_services(cluster=self.cluster, services=[name],
                                               include=["TAGS"])["services"]
        except ClientError:
            return None  # no cluster yet
        return next((s for s in found if s.get("status") != "INACTIVE"), None)

    def network(self, network: Network) -> tuple[list[str], list[str]]:
        """Subnets and security groups: the flags, else the default VPC's (and its default SG)."""
        subnets = network.subnets
        if not subnets:
            found = self.ec2.describe_subnets(
                Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
            if not found:
                raise ProvisionError(f"no default VPC in {self.ecs.meta.region_name}: pass"
                                     " --subnet and --security-group for the services")
            subnets = sorted(s["SubnetId"] for s in found)
        if network.security_groups:
            return subnets, network.security_groups
        vpc = self.ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
        groups = self.ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
        return subnets, [g["GroupId"] for g in groups]


def _initial_image(store: Store | None, service: Service, env: str) -> str:
    current = store.current_deployment(service.id, env) if store else None
    return current.image if current else image_for(service, "latest")


def provision(session: boto3.Session, pipeline: Pipeline, services: list[Service], env: str, *,
              flags: SizeFlags | None = None, network: Network | None = None,
              dry_run: bool = False, store: Store | None = None) -> list[Step]:
    flags, network = flags or SizeFlags(), network or Network()
    steps: list[Step] = []
    for target, members in _by_cluster(pipeline, services, env, steps):
        run = _Run(session, target, pipeline.name, env, dry_run)
        ns_arn = _ensure_namespace(run)
        _ensure_cluster(run, ns_arn)
        vpc = run.network(network)
        for service in members:
            _ensure_service(run, service, service_name(service, target, env), ns_arn, flags,
                            network, vpc, _initial_image(store, service, env))
        steps += run.steps
    return steps


def _by_cluster(pipeline: Pipeline, services: list[Service], env: str,
                steps: list[Step]) -> list[tuple[EcsTargetConfig, list[Service]]]:
    groups: dict[tuple[str, str, str | None], tuple[EcsTargetConfig, list[Service]]] = {}
    for service in services:
        target = ecs_target(pipeline, service, env)
        if target is None:
            steps.append(Step("skip", "service", service.name, f"{env} target is not ecs"))
            continue
        key = (target.cluster, target.region, target.endpoint_url)
        groups.setdefault(key, (target, []))[1].append(service)
    return list(groups.values())


def _ensure_namespace(run: _Run) -> str:
    name = namespace_name(run.pipeline, run.env)
    found = run.namespace()
    if found:
        run.do(Step("keep", "namespace", name))
        return str(found["Arn"])

    def create() -> str:
        sd_tags = [{"Key": k, "Value": v} for k, v in tags(run.pipeline, run.env).items()]
        run.sd.create_http_namespace(Name=name, Tags=sd_tags,
                                     Description=f"Seamless {run.pipeline} {run.env}")
        created = run.namespace()
        if created is None:
            raise ProvisionError(f"Cloud Map namespace {name} was not created")
        return str(created["Arn"])

    return run.do(Step("create", "namespace", name, "Cloud Map HTTP, Service Connect"),
                  create) or f"<new namespace {name}>"


def _ensure_cluster(run: _Run, ns_arn: str) -> None:
    if run.cluster_info():
        run.do(Step("keep", "cluster", run.cluster))
        return
    run.do(Step("create", "cluster", run.cluster), lambda: run.ecs.create_cluster(
        clusterName=run.cluster, tags=ecs_tags(run.pipeline, run.env),
        serviceConnectDefaults={"namespace": ns_arn}))


def _ensure_service(run: _Run, service: Service, name: str, ns_arn: str, flags: SizeFlags,
                    network: Network, vpc: tuple[list[str], list[str]],
                    initial_image: str) -> None:
    existing = run.ecs_service(name)
    if existing and not is_ours(existing.get("tags"), run.pipeline, run.env):
        run.do(Step("keep", "service", name, "exists, not created by seamless: left alone"))
        return
    current_td = run.latest_task_definition(name)
    current = facts_of(current_td) if current_td else None
    facts = desired_facts(service, flags, current, initial_image)
    new_revision = current != facts
    if current_td and not new_revision:
        td_arn = current_td["taskDefinitionArn"]
        run.do(Step("keep", "task-definition", f"{name}:{current_td['revision']}"))
    else:
        body = task_definition(name, service.name, facts, network.execution_role_arn,
                               ecs_tags(run.pipeline, run.env))
        detail = (f"{facts.image}, port {facts.port}, {facts.cpu} CPU / {facts.memory} MiB"
                  + ("" if current is None else ", facts changed"))
        registered = run.do(Step("register", "task-definition", name, detail),
                            lambda: run.ecs.register_task_definition(**body))
        td_arn = (registered["taskDefinition"]["taskDefinitionArn"] if registered
                  else f"<new revision of {name}>")
    if existing is None:
        _create_service(run, service, name, td_arn, ns_arn, flags, network, vpc)
        return
    changes: dict[str, Any] = {}
    if new_revision:
        changes["taskDefinition"] = td_arn
    if flags.desired_count is not None and flags.desired_count != existing.get("desiredCount"):
        changes["desiredCount"] = flags.desired_count
    if not changes:
        run.do(Step("keep", "service", name))
        return
    run.do(Step("update", "service", name, ", ".join(f"{k}={v}" for k, v in changes.items())),
           lambda: run.ecs.update_service(cluster=run.cluster, service=name, **changes))


def _create_service(run: _Run, service: Service, name: str, td_arn: str, ns_arn: str,
                    flags: SizeFlags, network: Network, vpc: tuple[list[str], list[str]]) -> None:
    count = flags.desired_count if flags.desired_count is not None else DEFAULT_DESIRED_COUNT
    awsvpc = {"subnets": vpc[0], "securityGroups": vpc[1],
              "assignPublicIp": "ENABLED" if network.assign_public_ip else "DISABLED"}
    run.do(Step("create", "service", name,
                f"{count} task(s), reachable as http://{service.name}:{service.container_port}"),
           lambda: run.ecs.create_service(
               cluster=run.cluster, serviceName=name, taskDefinition=td_arn,
               desiredCount=count, launchType="FARGATE",
               networkConfiguration={"awsvpcConfiguration": awsvpc},
               serviceConnectConfiguration=service_connect(
                   ns_arn, service.name, service.container_port),
               tags=ecs_tags(run.pipeline, run.env), propagateTags="SERVICE"))


def teardown(session: boto3.Session, pipeline: Pipeline, services: list[Service], env: str, *,
             dry_run: bool = False) -> list[Step]:
    """Delete the tagged services, task definitions, cluster and namespace; keep the rest."""
    steps: list[Step] = []
    for target, members in _by_cluster(pipeline, services, env, steps):
        run = _Run(session, target, pipeline.name, env, dry_run)
        for service in members:
            name = service_name(service, target, env)
            for colour in COLOURS:  # blue_green / canary run a service per colour
                _remove_service(run, f"{name}-{colour}", task_definitions=False)
            _remove_service(run, name)
        _remove_cluster_and_namespace(run)
        steps += run.steps
    return steps


def _remove_cluster_and_namespace(run: _Run) -> None:
    cluster = run.cluster_info()
    if cluster and not is_ours(cluster.get("tags"), run.pipeline, run.env):
        run.do(Step("keep", "cluster", run.cluster, "not created by seamless"))
    elif cluster:
        remaining = [s for s in _cluster_services(run) if s not in run.deleted]
        if remaining:
            run.do(Step("keep", "cluster", run.cluster,
                        f"still runs {', '.join(sorted(remaining))}"))
        else:
            run.do(Step("delete", "cluster", run.cluster),
                   lambda: run.ecs.delete_cluster(cluster=run.cluster))
    ns = run.namespace()
    if ns and is_ours(run.sd.list_tags_for_resource(ResourceARN=ns["Arn"])["Tags"],
                      run.pipeline, run.env):
        run.do(Step("delete", "namespace", ns["Name"]),
               lambda: run.sd.delete_namespace(Id=ns["Id"]))
    elif ns:
        run.do(Step("keep", "namespace", ns["Name"], "not created by seamless"))


def _cluster_services(run: _Run) -> list[str]:
    """Names of the cluster's services that still exist (deleted ones linger as INACTIVE)."""
    arns = run.ecs.list_services(cluster=run.cluster).get("serviceArns", [])
    names: list[str] = []
    for i in range(0, len(arns), 10):  # describe_services takes at most 10
        found = run.ecs.describe_services(cluster=run.cluster, services=arns[i:i + 10])
        names += [s["serviceName"] for s in found["services"] if s["status"] != "INACTIVE"]
    return names


def _remove_service(run: _Run, name: str, task_definitions: bool = True) -> None:
    existing = run.ecs_service(name)
    if existing and is_ours(existing.get("tags"), run.pipeline, run.env):
        run.deleted.add(name)
        run.do(Step("delete", "service", name),
               lambda: run.ecs.delete_service(cluster=run.cluster, service=name, force=True))
    elif existing:
        run.do(Step("keep", "service", name, "not created by seamless"))
    if not task_definitions:  # a colour service runs its base service's family
        return
    arns = run.ecs.list_task_definitions(familyPrefix=name, status="ACTIVE")["taskDefinitionArns"]
    for arn in arns:
        got = run.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        if got["taskDefinition"]["family"] == name and is_ours(got.get("tags"), run.pipeline,
                                                                run.env):
            run.do(Step("delete", "task-definition", arn.rsplit("/", 1)[-1]),
                   partial(run.ecs.deregister_task_definition, taskDefinition=arn))
