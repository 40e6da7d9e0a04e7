"""Blue-green and canary on ECS through an ALB's weighted target groups, on moto.

moto (server mode, over HTTP) models the API calls, not the traffic. What it cannot do,
and how these tests stand in for it:
- it runs no task and sends no request through the load balancer: nothing here checks
  which colour answered a request. What is asserted is what the agent sets and records:
  the listener's ForwardConfig weights step by step, the colour services (task
  definition, desired count), the deployment rows and the stored canary windows;
- ECS registers no task in a target group: the test registers one IP target per target
  group, as ECS would for a running task, and moto reports every registered target
  `healthy` (no health check runs, so an `unhealthy` canary target is only covered by
  the rule's own test on given target health);
- the ALB publishes no CloudWatch metric: `AlbTraffic` plays it, putting RequestCount
  (and 5xx for a bad build) per target group in proportion to the listener's weights;
  moto computes no percentile (ExtendedStatistics are ignored), so no p95 is judged here;
- alarms are never evaluated: a test sets an alarm's state with set_alarm_state.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from agent.deploy.canary import Figures
from agent.deploy.elb import ElbSplit, arn_suffix
from agent.logs.logger import LoggingStageLog
from agent.onboarding.ecs_facts import ecs_tags
from agent.onboarding.ecs_provision import teardown
from store.models import (
    CanaryConfig,
    DeploymentKind,
    DeploymentStatus,
    DockerTargetConfig,
    EcsLoadBalancerConfig,
    EcsTargetConfig,
    PipelineConfig,
    ServiceConfig,
)
from tests.deploy.conftest import REGION, make_run
from tests.harness import wait_until
from tests.helpers import unique_name

CANARY = CanaryConfig(steps=[10, 50, 100], bake_s=1, min_requests=5, hold_timeout_s=120)


class Aws:
    """The moto resources of one service: an ALB listener, two target groups, a cluster
    with the `<service>-production` service `env provision` would have made."""

    def __init__(self, moto_server: Any) -> None:
        self.moto = moto_server
        self.ecs, self.elbv2 = moto_server.client("ecs"), moto_server.client("elbv2")
        self.cloudwatch, ec2 = moto_server.client("cloudwatch"), moto_server.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                                          AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
                        for i, z in ((1, "a"), (2, "b"))]
        self.security_group = ec2.create_security_group(
            GroupName=unique_name("sg"), Description="service", VpcId=vpc)["GroupId"]
        lb = self.elbv2.create_load_balancer(Name=unique_name("lb")[:32], Subnets=self.subnets)
        self.lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        self.groups = {colour: self.elbv2.create_target_group(
            Name=unique_name(colour)[:32], Protocol="HTTP", Port=8080, VpcId=vpc,
            TargetType="ip")["TargetGroups"][0]["TargetGroupArn"] for colour in ("blue", "green")}
        # Before the first deploy the listener answers 503 itself: no colour is live.
        self.listener = self.elbv2.create_listener(
            LoadBalancerArn=self.lb_arn, Protocol="HTTP", Port=80, DefaultActions=[{
                "Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
        )["Listeners"][0]["ListenerArn"]
        for i, arn in enumerate(self.groups.values()):  # ECS's part: a task per group
            self.elbv2.register_targets(TargetGroupArn=arn,
                                        Targets=[{"Id": f"10.0.1.{10 + i}", "Port": 8080}])
        self.cluster = unique_name("cluster")
        self.ecs.create_cluster(clusterName=self.cluster)

    def weights(self) -> dict[str, int]:
        return ElbSplit(self.lb_config(), self.elbv2, self.cloudwatch).weights()

    def lb_config(self, **kw: Any) -> EcsLoadBalancerConfig:
        return EcsLoadBalancerConfig(listener_arn=self.listener,
                                     blue_target_group_arn=self.groups["blue"],
                                     green_target_group_arn=self.groups["green"],
                                     check_interval_s=0.2, health_wait_s=10, **kw)

    def service(self, name: str) -> dict[str, Any]:
        return self.ecs.describe_services(cluster=self.cluster, services=[name])["services"][0]

    def image_of(self, name: str) -> str:
        td = self.ecs.describe_task_definition(
            taskDefinition=self.service(name)["taskDefinition"])["taskDefinition"]
        return str(td["containerDefinitions"][0]["image"])


@pytest.fixture
def aws(moto_server, monkeypatch) -> Aws:
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")  # read by moto at create_service
    return Aws(moto_server)


def _ecs_service(store, aws: Aws, registry, strategy: str, tags: bool = False,
                 base_target_group: str | None = None, **lb_kw: Any):
    pipeline = store.create_pipeline(PipelineConfig(
        name=unique_name("pl"), staging=DockerTargetConfig(),
        production=EcsTargetConfig(cluster=aws.cluster, region=REGION,
                                   endpoint_url=str(aws.moto), ecr_registry=registry.host,
                                   wait_delay_s=1, wait_max_attempts=5, strategy=strategy,
                                   canary=CANARY, load_balancer=aws.lb_config(**lb_kw))))
    service = store.create_service(ServiceConfig(
        name=unique_name("svc"), pipeline=pipeline.name, repo_url="/tmp/none",
        container_port=8080))
    family = aws.ecs.register_task_definition(
        family=service.name, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{"name": service.name, "image": "placeholder:0", "memory": 512,
                               "portMappings": [{"containerPort": 8080}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    aws.ecs.create_service(
        cluster=aws.cluster, serviceName=f"{service.name}-production", taskDefinition=family,
        desiredCount=1, launchType="FARGATE",
        tags=ecs_tags(pipeline.name, "production") if tags else [],
        loadBalancers=[{"targetGroupArn": aws.groups[base_target_group],
                        "containerName": service.name, "containerPort": 8080}]
        if base_target_group else [], networkConfiguration={
            "awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": [aws.security_group],
                                    "assignPublicIp": "DISABLED"}})
    return pipeline, service


def _deploy(deployer, store, pipeline, service, pair):
    sha, image = pair
    log = LoggingStageLog("test")
    result = deployer.deploy_stage(make_run(store, service, sha), service, pipeline,
                                   "production", image, log)
    return result, log


def _in_thread(fn):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


class AlbTraffic:
    """Plays the ALB's CloudWatch metrics: every 0.1 s, 10 requests split between the
    target groups by the listener's current weights; `error_rate` of the named colour's
    requests are 5xx. Records every weight setting it saw."""

    def __init__(self, aws: Aws, errors: dict[str, float] | None = None) -> None:
        self.aws, self.errors = aws, errors or {}
        self.seen: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        lb = arn_suffix(self.aws.listener)
        while not self._stop.wait(0.1):
            weights = self.aws.weights()
            if not self.seen or self.seen[-1] != weights:
                self.seen.append(weights)
            now = datetime.now(UTC)
            data = []
            for colour, weight in weights.items():
                dims = [{"Name": "TargetGroup", "Value": arn_suffix(self.aws.groups[colour])},
                        {"Name": "LoadBalancer", "Value": lb}]
                requests = weight / 10
                if not requests:
                    continue
                data.append({"MetricName": "RequestCount", "Dimensions": dims,
                             "Timestamp": now, "Value": requests, "Unit": "Count"})
                bad = requests * self.errors.get(colour, 0)
                data.append({"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims,
                             "Timestamp": now, "Value": bad, "Unit": "Count"})
            if data:
                self.aws.cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB",
                                                    MetricData=data)

    def __enter__(self) -> AlbTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_ecs_blue_green_switches_the_listener_between_two_colour_services(
        deployer, store, aws, registry, service_images):
    pipeline, service = _ecs_service(store, aws, registry, "blue_green")
    base = f"{service.name}-production"
    sha1, image1 = service_images["v1"]
    result, log = _deploy(deployer, store, pipeline, service, service_images["v1"])
    assert result.ok, log.lines
    # First deploy: blue is created from the provisioned service and takes everything.
    assert aws.weights() == {"blue": 100, "green": 0}
    blue = aws.service(f"{base}-blue")
    assert blue["desiredCount"] == 1 and blue["launchType"] == "FARGATE"
    assert blue["networkConfiguration"] == aws.service(base)["networkConfiguration"]
    assert blue["loadBalancers"][0]["targetGroupArn"] == aws.groups["blue"]
    assert aws.image_of(f"{base}-blue").endswith(f":{sha1}")

    sha2, _ = service_images["v2"]
    result, log = _deploy(deployer, store, pipeline, service, service_images["v2"])
    assert result.ok, log.lines
    assert aws.weights() == {"blue": 0, "green": 100}
    assert aws.image_of(f"{base}-green").endswith(f":{sha2}")
    assert aws.service(f"{base}-blue")["desiredCount"] == 0  # the old colour scaled down
    dep = store.current_deployment(service.id, "production")
    state = store.deployment_target_state(dep.id)
    assert (dep.sha, state["colour"], state["service"]) == (sha2, "green", f"{base}-green")

    # A rollback is a deploy of the recorded image onto the idle colour.
    started = deployer.rollback(service, "production", sha1, actor="ops")
    deployer.wait_idle()
    done = store.get_deployment(started.id)
    assert (done.kind, done.status) == (DeploymentKind.rollback, DeploymentStatus.active)
    assert aws.weights() == {"blue": 100, "green": 0}
    assert aws.image_of(f"{base}-blue").endswith(f":{sha1}")
    assert aws.service(f"{base}-green")["desiredCount"] == 0


def test_at_start_the_listener_serves_the_recorded_colour_again(
        deployer, store, aws, registry, service_images):
    pipeline, service = _ecs_service(store, aws, registry, "blue_green")
    base = f"{service.name}-production"
    for version in ("v1", "v2"):
        assert _deploy(deployer, store, pipeline, service, service_images[version])[0].ok
    # What a kill -9 in the middle of a canary step leaves: the listener split, the old
    # colour scaled up again.
    ElbSplit(aws.lb_config(), aws.elbv2, aws.cloudwatch).apply({"blue": 50, "green": 50})
    aws.ecs.update_service(cluster=aws.cluster, service=f"{base}-blue", desiredCount=1)
    assert deployer.reconcile_fronts()["served"] >= 1
    assert aws.weights() == {"blue": 0, "green": 100}  # green is recorded active
    assert aws.service(f"{base}-blue")["desiredCount"] == 0
    assert aws.service(f"{base}-green")["desiredCount"] == 1


def test_a_service_already_behind_the_listener_hands_over_to_the_other_colour(
        deployer, store, aws, registry, service_images):
    """Before blue_green, the provisioned service was itself in the blue target group and
    the listener forwarded there: the first deploy goes to green, then scales it to 0 (it
    would otherwise share blue's group with the next deploy's tasks)."""
    pipeline, service = _ecs_service(store, aws, registry, "blue_green",
                                     base_target_group="blue")
    base = f"{service.name}-production"
    aws.elbv2.modify_listener(ListenerArn=aws.listener, DefaultActions=[
        {"Type": "forward", "TargetGroupArn": aws.groups["blue"]}])
    assert aws.weights() == {"blue": 100, "green": 0}
    result, log = _deploy(deployer, store, pipeline, service, service_images["v1"])
    assert result.ok, log.lines
    assert aws.weights() == {"blue": 0, "green": 100}
    assert aws.service(base)["desiredCount"] == 0
    assert aws.service(f"{base}-green")["desiredCount"] == 1
    assert any(f"scaled the old colour's service {base} to 0" in line for line in log.lines)


def test_env_teardown_removes_the_colour_services_too(
        deployer, store, aws, registry, service_images):
    pipeline, service = _ecs_service(store, aws, registry, "blue_green", tags=True)
    base = f"{service.name}-production"
    for version in ("v1", "v2"):
        assert _deploy(deployer, store, pipeline, service, service_images[version])[0].ok
    steps = teardown(boto3.session.Session(region_name=REGION), pipeline, [service],
                     "production")
    deleted = {s.name for s in steps if (s.verb, s.kind) == ("delete", "service")}
    assert deleted == {base, f"{base}-blue", f"{base}-green"}
    found = aws.ecs.describe_services(cluster=aws.cluster, services=sorted(deleted))
    assert {s["status"] for s in found["services"]} <= {"INACTIVE", "DRAINING"}


def test_ecs_good_canary_walks_10_50_100_with_figures_stored(
        deployer, store, aws, registry, service_images):
    pipeline, service = _ecs_service(store, aws, registry, "canary")
    assert _deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    with AlbTraffic(aws) as traffic:
        result, log = _deploy(deployer, store, pipeline, service, service_images["v2"])
    assert result.ok, log.lines
    steps = [w for w in traffic.seen if w != {"blue": 100, "green": 0}]
    assert steps[:2] == [{"blue": 90, "green": 10}, {"blue": 50, "green": 50}], steps
    assert aws.weights() == {"blue": 0, "green": 100}
    dep = store.current_deployment(service.id, "production")
    assert dep.sha == service_images["v2"][0]
    figures = store.list_canary_measurements(dep.id)
    last = {(m.step, m.role): (m.weight, m.verdict) for m in figures}
    assert last == {(1, "canary"): (10, "pass"), (1, "stable"): (10, "pass"),
                    (2, "canary"): (50, "pass"), (2, "stable"): (50, "pass")}
    passed = [m for m in figures if m.role == "canary" and m.verdict == "pass"]
    assert all(m.requests >= CANARY.min_requests and m.errors == 0 for m in passed)
    assert all("no p95 reported" in m.rule for m in passed)  # moto: no percentiles
    assert aws.service(f"{service.name}-production-blue")["desiredCount"] == 0

    # A rollback goes back at once: no steps, no windows, even with the canary strategy.
    started = deployer.rollback(service, "production", service_images["v1"][0], actor="ops")
    deployer.wait_idle()
    back = store.get_deployment(started.id)
    assert back.status is DeploymentStatus.active, back.error
    assert aws.weights() == {"blue": 100, "green": 0}
    assert store.list_canary_measurements(back.id) == []


def test_ecs_canary_with_5xx_is_stopped_at_its_first_step(
        deployer, store, aws, registry, service_images):
    pipeline, service = _ecs_service(store, aws, registry, "canary")
    assert _deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    with AlbTraffic(aws, errors={"green": 0.2}):
        result, log = _deploy(deployer, store, pipeline, service, service_images["v2"])
    assert not result.ok and "canary stopped: step 1 (10%)" in result.error
    assert "error rate" in result.error and "blue" in result.error
    assert aws.weights() == {"blue": 100, "green": 0}
    assert aws.service(f"{service.name}-production-green")["desiredCount"] == 0
    dep = store.list_deployments(service_id=service.id, environment="production")[0]
    assert dep.status is DeploymentStatus.failed
    canary = [m for m in store.list_canary_measurements(dep.id) if m.role == "canary"][-1]
    assert (canary.step, canary.verdict) == (1, "fail") and canary.errors > 0
    assert store.current_deployment(service.id, "production").sha == service_images["v1"][0]


def test_ecs_canary_is_rolled_back_when_its_cloudwatch_alarm_fires(
        deployer, store, aws, registry, service_images):
    alarm = unique_name("alarm")
    aws.cloudwatch.put_metric_alarm(
        AlarmName=alarm, Namespace="AWS/ApplicationELB", MetricName="TargetResponseTime",
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=0.5,
        ComparisonOperator="GreaterThanThreshold")
    pipeline, service = _ecs_service(store, aws, registry, "canary", alarm_names=[alarm])
    assert _deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    with AlbTraffic(aws):
        thread, out = _in_thread(lambda: _deploy(deployer, store, pipeline, service,
                                                 service_images["v2"]))
        wait_until(lambda: aws.weights() == {"blue": 90, "green": 10}, timeout=60,
                   what="canary at step 1")
        aws.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM",
                                       StateReason="p99 latency 2.1 s > 0.5 s")
        thread.join(60)
    result, log = out[0]
    assert not result.ok and f"CloudWatch alarm {alarm} is in ALARM" in result.error
    assert "p99 latency 2.1 s" in result.error
    assert aws.weights() == {"blue": 100, "green": 0}
    assert aws.service(f"{service.name}-production-green")["desiredCount"] == 0
    assert any("verdict: fail" in line and alarm in line for line in log.lines)


def test_ecs_canary_without_traffic_holds_and_is_aborted(
        deployer, store, aws, registry, service_images):
    pipeline, service = _ecs_service(store, aws, registry, "canary")
    assert _deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    thread, out = _in_thread(lambda: _deploy(deployer, store, pipeline, service,
                                             service_images["v2"]))

    def measured() -> list:
        dep = store.list_deployments(service_id=service.id, environment="production")[0]
        return store.list_canary_measurements(dep.id)
    try:
        wait_until(lambda: len(measured()) >= 4, timeout=60, what="two inconclusive windows")
        assert {(m.step, m.verdict) for m in measured()} == {(1, "inconclusive")}
        assert "min_requests" in measured()[0].rule
        assert aws.weights() == {"blue": 90, "green": 10}  # held at step 1
        status = deployer.canary_status(service, "production")
        assert status.running and status.weights == {"blue": 90, "green": 10}
    finally:
        deployer.steer_canary(service, "production", "abort", "alice")
        thread.join(30)
    result, log = out[0]
    assert not result.ok and "aborted by alice" in result.error
    assert aws.weights() == {"blue": 100, "green": 0}
    assert store.current_deployment(service.id, "production").sha == service_images["v1"][0]


def test_ecs_canary_held_is_promoted_by_hand(deployer, store, aws, registry, service_images):
    pipeline, service = _ecs_service(store, aws, registry, "canary")
    assert _deploy(deployer, store, pipeline, service, service_images["v1"])[0].ok
    thread, out = _in_thread(lambda: _deploy(deployer, store, pipeline, service,
                                             service_images["v2"]))
    wait_until(lambda: aws.weights() == {"blue": 90, "green": 10}, timeout=60,
               what="canary held at step 1")
    deployer.steer_canary(service, "production", "promote", "bob")
    thread.join(60)
    result, log = out[0]
    assert result.ok, log.lines
    assert any("promoted by bob at step 1 (10%)" in line for line in log.lines)
    assert aws.weights() == {"blue": 0, "green": 100}
    assert aws.service(f"{service.name}-production-blue")["desiredCount"] == 0
    assert store.current_deployment(service.id, "production").sha == service_images["v2"][0]


def test_a_failing_target_health_or_missing_alarm_is_named(aws):
    split = ElbSplit(aws.lb_config(), aws.elbv2, aws.cloudwatch)
    split.target_health = lambda colour: {  # type: ignore[method-assign]  # moto: never so
        "unhealthy": ["10.0.1.11:8080 (Target.Timeout)"], "healthy": ["10.0.1.12:8080"]}
    good = Figures("green", requests=50)
    verdict = split.verdict(good, Figures("blue", requests=500), CANARY)
    assert verdict.verdict == "fail"
    assert verdict.rule == "1 of 2 canary targets unhealthy: 10.0.1.11:8080 (Target.Timeout)"
    missing = ElbSplit(aws.lb_config(alarm_names=["no-such-alarm"]), aws.elbv2,
                       aws.cloudwatch)
    with pytest.raises(Exception, match="no-such-alarm not found"):
        missing.check_alarms_exist()


def test_ecs_canary_without_a_load_balancer_is_refused_naming_it():
    with pytest.raises(ValidationError, match="strategy canary on ECS needs load_balancer"):
        EcsTargetConfig(cluster="c", strategy="canary")
    with pytest.raises(ValidationError, match="probe_rps is for the Docker front only"):
        EcsTargetConfig(cluster="c", canary=CanaryConfig(probe_rps=2))
    with pytest.raises(ValidationError, match="not an ELBv2 target group ARN"):
        EcsLoadBalancerConfig(listener_arn="arn:aws:elasticloadbalancing:us-east-1:"
                              "123456789012:listener/app/lb/abc/def",
                              blue_target_group_arn="blue", green_target_group_arn="green")



class RecordingCloudWatch:
    """Answers GetMetricStatistics like CloudWatch does for an ALB (percentiles included,
    which moto cannot give) and keeps every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def get_metric_statistics(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        point: dict[str, Any] = {"Sum": 40.0 if kw["MetricName"] == "RequestCount" else 0.0,
                                 "SampleCount": 40.0,
                                 "ExtendedStatistics": {"p50": 0.012, "p95": 0.031}}
        return {"Datapoints": [point]}


def test_the_window_figures_use_calls_real_cloudwatch_accepts(aws):
    """CloudWatch refuses Statistics and ExtendedStatistics in one call (moto does not
    check); percentiles come back in seconds and are stored in ms."""
    cloudwatch = RecordingCloudWatch()
    split = ElbSplit(aws.lb_config(), aws.elbv2, cloudwatch)
    since = datetime.now(UTC).timestamp() - 30
    figures = split.measure(None, since, since + 30)["green"]
    assert not [c for c in cloudwatch.calls if "Statistics" in c and "ExtendedStatistics" in c]
    assert (figures.requests, figures.samples) == (40, 40)
    assert (figures.p50_ms, figures.p95_ms) == (12.0, 31.0)
    dims = {d["Name"]: d["Value"] for d in cloudwatch.calls[0]["Dimensions"]}
    assert dims["TargetGroup"].startswith("targetgroup/")
    assert dims["LoadBalancer"].startswith("app/")
