"""Blue-green and canary on ECS: two colour services behind weighted target groups.

Each colour is its own ECS service, `<service>-blue` and `<service>-green`, registered
with its own target group of the load balancer (`EcsLoadBalancerConfig`). A deploy:

1. finds the live colour from the listener's weights (what actually serves);
2. puts the new task-definition revision on the other colour's service — created the
   first time as a copy of the live colour's service (else of `<service>`, the one
   `env provision` makes: launch type, network configuration, desired count), with its
   target group attached — and waits until it is stable;
3. waits until the new colour's target group has as many healthy targets as tasks;
4. blue-green: all weight to the new colour in one `modify_listener`; canary: the same
   steps and verdict code as the Docker front (`canary.run_steps`), judged by
   `elb.ElbSplit` (alarms, target health, CloudWatch metrics), then all weight;
5. scales the old colour's service to 0 (its tasks drain out of the target group).

A failed step, an abort or an unhealthy new colour gives all weight back to the live
colour at once and scales the new one to 0: the live colour never stopped serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.deploy.base import DeployError, DeployOutcome, DeployRequest
from agent.deploy.canary import CanaryControl, CanaryFailed, run_steps
from agent.deploy.elb import ElbSplit
from agent.logs import StageLog
from store.models import EcsLoadBalancerConfig, EcsTargetConfig

COLOURS = ("blue", "green")
WaitStable = Callable[[Any, str, float, StageLog], str]


def live_colour(weights: dict[str, int]) -> str | None:
    """The colour with most of the listener's weight; None when neither has any."""
    best = max(COLOURS, key=lambda c: weights.get(c, 0))
    return best if weights.get(best, 0) > 0 else None


class EcsColours:
    def __init__(self, config: EcsTargetConfig, lb: EcsLoadBalancerConfig,
                 aws: Callable[[str], Any], wait_stable: WaitStable) -> None:
        self.config, self.lb = config, lb
        self.ecs = aws("ecs")
        self.split = ElbSplit(lb, aws("elbv2"), aws("cloudwatch"))
        self._wait_stable = wait_stable

    def _describe(self, names: list[str]) -> dict[str, dict[str, Any]]:
        found = self.ecs.describe_services(cluster=self.config.cluster, services=names,
                                           include=["TAGS"])
        return {s["serviceName"]: s for s in found["services"] if s.get("status") == "ACTIVE"}

    def live_task_definition(self, base: str) -> tuple[str | None, str]:
        """(live colour, the task definition to build the next revision from)."""
        live = live_colour(self.split.weights())
        names = ([f"{base}-{live}"] if live else []) + [base, f"{base}-blue"]
        services = self._describe(names)
        for name in names:
            if name in services:
                return live, services[name]["taskDefinition"]
        raise DeployError(f"no ECS service to start from in cluster {self.config.cluster}:"
                          f" create {base} (seamless-agent env provision) or {base}-blue")

    def deploy(self, request: DeployRequest, log: StageLog, base: str, task_definition: str,
               container: str, container_port: int, state: dict[str, Any]) -> DeployOutcome:
        weights = self.split.weights()
        live = live_colour(weights)
        new = "green" if live == "blue" else "blue"
        name = f"{base}-{new}"
        log.system(f"listener weights {weights}: {live or 'no colour'} is live;"
                   f" deploying to {new} ({name})")
        desired = self._put_revision(base, live, name, new, task_definition, container,
                                     container_port, log)
        try:
            self._wait_healthy(new, desired, log)
            if live and self.config.strategy == "canary" and request.rollback:
                log.system("rollback: switching at once, no canary steps")
            elif live and self.config.strategy == "canary":
                self._canary(live, new, request, log)
            self.split.apply({new: 100})
        except (DeployError, CanaryFailed) as exc:
            if live:
                self.split.apply({live: 100})  # weight 0 at once: the canary takes nothing new
            self._scale(name, 0)
            keep = f"; {live} ({self._serving_service(base, live)}) keeps serving" if live else ""
            prefix = "canary stopped: " if isinstance(exc, CanaryFailed) else ""
            log.system(f"{prefix}{exc}{keep}; {name} scaled to 0")
            raise DeployError(f"{prefix}{exc}{keep}") from exc
        log.system(f"the listener sends every request to {new} ({name})")
        if live:
            old = self._serving_service(base, live)
            self._scale(old, 0)
            log.system(f"scaled the old colour's service {old} to 0")
        return DeployOutcome(
            healthy=True, health_detail=f"{desired} healthy target(s) in the {new} target group",
            state={**state, "strategy": self.config.strategy, "colour": new, "service": name,
                   "listener_arn": self.lb.listener_arn,
                   "target_group": self.split.groups[new]})

    def _serving_service(self, base: str, colour: str) -> str:
        """The service whose tasks are in `colour`'s target group: `<base>-<colour>`, or,
        before the first colour deploy, the provisioned `<base>` if it is registered there
        (a service that was already behind the load balancer)."""
        services = self._describe([f"{base}-{colour}", base])
        if f"{base}-{colour}" not in services and base in services and any(
                lb.get("targetGroupArn") == self.split.groups[colour]
                for lb in services[base].get("loadBalancers", [])):
            return base
        return f"{base}-{colour}"

    def _put_revision(self, base: str, live: str | None, name: str, colour: str,
                      task_definition: str, container: str, port: int, log: StageLog) -> int:
        """The new revision on the colour's service (created from a template the first
        time); waits until it is stable. Returns its desired count."""
        services = self._describe([name] + ([f"{base}-{live}"] if live else []) + [base])
        template = services.get(f"{base}-{live}") or services.get(base)
        desired = max(1, int((template or services.get(name) or {}).get("desiredCount") or 1))
        started = time.time()
        if name in services:
            self.ecs.update_service(cluster=self.config.cluster, service=name,
                                    taskDefinition=task_definition, desiredCount=desired)
            log.system(f"updated {name} to {task_definition} ({desired} task(s))")
        else:
            if template is None:
                raise DeployError(f"no ECS service to copy {name} from: create {base}"
                                  " (seamless-agent env provision) first")
            self.ecs.create_service(**self._copy(template, name, colour, task_definition,
                                                 desired, container, port))
            log.system(f"created {name} from {template['serviceName']}'s settings,"
                       f" in target group {self.split.groups[colour]}")
        self._wait_stable(self.ecs, name, started, log)
        return desired

    def _copy(self, template: dict[str, Any], name: str, colour: str, task_definition: str,
              desired: int, container: str, port: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "cluster": self.config.cluster, "serviceName": name,
            "taskDefinition": task_definition, "desiredCount": desired,
            "loadBalancers": [{"targetGroupArn": self.split.groups[colour],
                               "containerName": container, "containerPort": port}]}
        # A capacity provider strategy and a launch type exclude each other.
        placement = ("capacityProviderStrategy" if template.get("capacityProviderStrategy")
                     else "launchType")
        # The tags too: `env teardown` removes only what carries its pipeline's tags.
        for key in (placement, "tags", "platformVersion", "networkConfiguration",
                    "healthCheckGracePeriodSeconds", "deploymentConfiguration",
                    "propagateTags", "enableECSManagedTags", "enableExecuteCommand"):
            if template.get(key) not in (None, [], {}):
                spec[key] = template[key]
        return spec

    def _wait_healthy(self, colour: str, desired: int, log: StageLog) -> None:
        deadline = time.monotonic() + self.lb.health_wait_s
        while True:
            health = self.split.target_health(colour)
            if health.get("unhealthy"):
                raise DeployError(f"{colour} targets unhealthy in their target group:"
                                  f" {', '.join(health['unhealthy'][:3])}")
            healthy = len(health.get("healthy", []))
            if healthy >= desired:
                log.system(f"{colour}: {healthy} healthy target(s) in its target group")
                return
            if time.monotonic() >= deadline:
                seen = ", ".join(f"{len(v)} {k}" for k, v in sorted(health.items())) or "none"
                raise DeployError(f"{colour} has {healthy} of {desired} healthy target(s)"
                                  f" after {self.lb.health_wait_s:g} s ({seen})")
            time.sleep(min(5.0, self.lb.check_interval_s))

    def _canary(self, live: str, new: str, request: DeployRequest, log: StageLog) -> None:
        cfg = self.config.canary
        self.split.check_alarms_exist()
        alarms = ", ".join(self.lb.alarm_names) or "none"
        log.system(f"canary: steps {', '.join(f'{s}%' for s in cfg.steps)}; each bakes"
                   f" {cfg.bake_s:g} s; fails on a CloudWatch alarm in ALARM ({alarms}), an"
                   f" unhealthy canary target, or the target groups' figures: error rate >"
                   f" {cfg.max_error_rate:.1%} or > stable +{cfg.max_error_rate_increase:.1%},"
                   f" p95 > stable × {cfg.max_p95_ratio:g} + {cfg.p95_slack_ms:g} ms")
        run_steps(self.split, live, new, cfg, control=request.control or CanaryControl(),
                  record=request.record or (lambda m: None), say=log.system)

    def reconcile(self, base: str, active: str) -> list[str]:
        """At start: the colour the store records as active gets every request and the
        other one is scaled to 0 (a kill -9 mid-canary left the listener split). Returns
        what it changed."""
        other = "green" if active == "blue" else "blue"
        changed = []
        weights = self.split.weights()
        if weights.get(active) != 100 or weights.get(other):
            self.split.apply({active: 100})
            changed.append(f"listener weights {weights} → {active} 100")
        running = self._describe([f"{base}-{other}"]).get(f"{base}-{other}")
        if running and running.get("desiredCount"):
            self._scale(f"{base}-{other}", 0)
            changed.append(f"{base}-{other} scaled to 0")
        return changed

    def _scale(self, name: str, count: int) -> None:
        if name in self._describe([name]):
            self.ecs.update_service(cluster=self.config.cluster, service=name,
                                    desiredCount=count)
