"""Deploys to an ECS (Fargate or EC2) service with the image in ECR.

1. Push: tag the sha-tagged local image as `<registry>/<repository>:<sha>` and push it with
   the credentials from `ecr.get_authorization_token`. The registry is the token's
   `proxyEndpoint`, unless `EcsTargetConfig.ecr_registry` overrides it (moto models the ECR
   API but not the registry protocol, so tests push to a loopback docker-registry).
2. Register a new revision of the service's current task definition with the container
   named after the service (else the first one) pointing at the pushed image.
3. rolling (the default): `update_service` to that revision, then poll `describe_services` every
   `wait_delay_s` (at most `wait_max_attempts` times) until it is stable — one deployment,
   running == desired, like the `services_stable` waiter — or its rollout FAILED; new
   service events are copied into the stage log meanwhile. blue_green / canary: the
   revision goes on the idle colour's service behind the load balancer's weighted target
   groups (agent/deploy/ecs_colours.py).
Cluster, service, region and endpoint come from the config; credentials from the standard
AWS chain.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import boto3
import docker
import docker.errors
from botocore.exceptions import BotoCoreError, ClientError

from agent.deploy.base import DeployError, DeployOutcome, DeployRequest
from agent.deploy.ecs_colours import EcsColours, live_colour
from agent.logs import StageLog
from store.models import EcsTargetConfig, Service

logger = logging.getLogger(__name__)

# What register_task_definition accepts back from describe_task_definition.
_TD_FIELDS = ("family", "taskRoleArn", "executionRoleArn", "networkMode",
              "containerDefinitions", "volumes", "placementConstraints",
              "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
              "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage",
              "runtimePlatform")


class EcsTarget:
    kind = "ecs"

    def __init__(self, config: EcsTargetConfig,
                 docker_client_factory: Callable[[], docker.DockerClient]) -> None:
        self.config = config
        self._docker_client_factory = docker_client_factory

    def _aws(self, name: str) -> Any:
        return boto3.client(name, region_name=self.config.region,  # type: ignore[call-overload]
                            endpoint_url=self.config.endpoint_url)

    def service_name(self, service: Service, environment: str) -> str:
        return self.config.service or f"{service.name}-{environment}"

    # -- ECR ---------------------------------------------------------------------------------
    def _registry_login(self) -> tuple[str, dict[str, str]]:
        data = self._aws("ecr").get_authorization_token()["authorizationData"][0]
        user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
        registry = self.config.ecr_registry or urlparse(data["proxyEndpoint"]).netloc
        return registry, {"username": user, "password": password}

    def _repository(self, image: str) -> str:
        if self.config.ecr_repository:
            return self.config.ecr_repository
        return image.rsplit(":", 1)[0].rsplit("/", 1)[-1]

    def _ensure_repository(self, name: str) -> None:
        ecr = self._aws("ecr")
        try:
            ecr.describe_repositories(repositoryNames=[name])
        except ecr.exceptions.RepositoryNotFoundException:
            ecr.create_repository(repositoryName=name)

    def push(self, image: str, log: StageLog) -> str:
        """Push the local image to ECR; returns the remote reference. A rollback whose local
        image was pruned reuses the copy already in ECR."""
        client = self._docker_client_factory()
        registry, auth = self._registry_login()
        repository, tag = self._repository(image), image.rsplit(":", 1)[1]
        remote_repo = f"{registry}/{repository}"
        try:
            local = client.images.get(image)
        except docker.errors.ImageNotFound:
            if self._remote_exists(client, f"{remote_repo}:{tag}", auth):
                log.system(f"{remote_repo}:{tag} is already in ECR")
                return f"{remote_repo}:{tag}"
            raise DeployError(f"image {image} no longer exists locally or in ECR") from None
        self._ensure_repository(repository)
        local.tag(remote_repo, tag=tag)
        log.system(f"pushing {remote_repo}:{tag}")
        for chunk in client.api.push(remote_repo, tag=tag, stream=True, decode=True,
                                     auth_config=auth):
            if "error" in chunk or "errorDetail" in chunk:  # push does not raise on failure
                detail = chunk.get("error") or chunk["errorDetail"].get("message")
                raise DeployError(f"push of {remote_repo}:{tag} failed: {detail}")
            if chunk.get("status") and chunk.get("id") is None:
                log.write(chunk["status"])
        return f"{remote_repo}:{tag}"

    @staticmethod
    def _remote_exists(client: docker.DockerClient, ref: str, auth: dict[str, str]) -> bool:
        try:
            client.images.get_registry_data(ref, auth_config=auth)
            return True
        except docker.errors.APIError:
            return False

    # -- ECS ---------------------------------------------------------------------------------
    def deploy(self, request: DeployRequest, log: StageLog) -> DeployOutcome:
        try:
            return self._deploy(request, log)
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(f"AWS: {exc}") from exc

    def _colours(self) -> EcsColours | None:
        lb = self.config.load_balancer
        if self.config.strategy == "rolling" or lb is None:
            return None
        return EcsColours(self.config, lb, self._aws, self._wait_stable)

    def _deploy(self, request: DeployRequest, log: StageLog) -> DeployOutcome:
        cfg, ecs = self.config, self._aws("ecs")
        name = self.service_name(request.service, request.environment)
        colours = self._colours()
        remote = self.push(request.image, log)
        if colours is not None:
            _live, current_arn = colours.live_task_definition(name)
        else:
            described = ecs.describe_services(cluster=cfg.cluster, services=[name])
            found = [s for s in described["services"] if s.get("status") != "INACTIVE"]
            # Real ECS reports a missing service in `failures`, a deleted one INACTIVE.
            if not found:
                raise DeployError(f"ECS service {name} not found in cluster {cfg.cluster}")
            current_arn = found[0]["taskDefinition"]
        td = ecs.describe_task_definition(taskDefinition=current_arn)["taskDefinition"]
        spec = {k: td[k] for k in _TD_FIELDS if td.get(k) not in (None, [], {})}
        containers = spec["containerDefinitions"]
        target = next((c for c in containers if c["name"] == request.service.name), containers[0])
        target["image"] = remote
        new_arn = ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"]
        log.system(f"registered {new_arn} (container {target['name']} → {remote})")
        state = {"kind": self.kind, "cluster": cfg.cluster, "service": name,
                 "task_definition": new_arn, "previous_task_definition": current_arn,
                 "image": remote}
        if colours is not None:
            port = (colours.lb.container_port or request.service.container_port
                    or next((m["containerPort"] for m in target.get("portMappings", [])), 80))
            return colours.deploy(request, log, name, new_arn, target["name"], int(port), state)
        started = time.time()
        ecs.update_service(cluster=cfg.cluster, service=name, taskDefinition=new_arn)
        log.system(f"updated service {name} in {cfg.cluster}; waiting until stable")
        detail = self._wait_stable(ecs, name, started, log)
        return DeployOutcome(healthy=True, health_detail=detail, address=None, state=state)

    def _wait_stable(self, ecs: Any, name: str, since: float, log: StageLog) -> str:
        seen: set[str] = set()
        for _attempt in range(self.config.wait_max_attempts):
            svc = ecs.describe_services(cluster=self.config.cluster, services=[name])[
                "services"][0]
            for event in reversed(svc.get("events", [])):
                created = event.get("createdAt")
                if event["id"] not in seen and (created is None or created.timestamp() >= since):
                    seen.add(event["id"])
                    log.write(f"ecs: {event['message']}")
            deployments = svc.get("deployments", [])
            primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
            if primary and primary.get("rolloutState") == "FAILED":
                raise DeployError(f"ECS deployment failed: {primary.get('rolloutStateReason')}")
            running, desired = svc.get("runningCount", 0), svc.get("desiredCount", 0)
            if len(deployments) <= 1 and running == desired:
                return f"ECS service {name} stable: {running}/{desired} tasks running"
            time.sleep(self.config.wait_delay_s)
        raise DeployError(
            f"ECS service {name} not stable after {self.config.wait_max_attempts} checks"
            f" ({self.config.wait_delay_s} s apart)")

    def current(self, service: Service, environment: str) -> dict[str, Any] | None:
        name = self.service_name(service, environment)
        colours = self._colours()
        if colours is not None:
            live = live_colour(colours.split.weights())
            if live is None:
                return None
            name = f"{name}-{live}"
        described = self._aws("ecs").describe_services(cluster=self.config.cluster,
                                                       services=[name])["services"]
        if not described:
            return None
        arn = described[0]["taskDefinition"]
        td = self._aws("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
        return {"task_definition": arn,
                "image": td["containerDefinitions"][0].get("image"), "address": None}

    def reconcile(self, service: Service, environment: str,
                  state: dict[str, Any] | None) -> bool:
        """At start (blue_green / canary): the listener serves the colour the store records
        as active, the other colour is scaled to 0. Rolling services have nothing to do."""
        colours = self._colours()
        if colours is None or not state or state.get("kind") != self.kind or (
                state.get("colour") not in ("blue", "green")):
            return False
        try:
            changed = colours.reconcile(self.service_name(service, environment),
                                        state["colour"])
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(f"AWS: {exc}") from exc
        for what in changed:
            logger.warning("%s/%s: %s (the store records %s active)", service.name,
                           environment, what, state["colour"])
        return bool(changed)

    def front_weights(self, service: Service, environment: str) -> dict[str, int]:
        """The listener's weight per colour (blue_green / canary), else nothing."""
        colours = self._colours()
        if colours is None:
            return {}
        try:
            return colours.split.weights()
        except (ClientError, BotoCoreError):
            return {}

    def image_exists(self, image: str) -> bool:
        client = self._docker_client_factory()
        try:
            client.images.get(image)
            return True
        except docker.errors.ImageNotFound:
            pass
        try:
            registry, auth = self._registry_login()
        except (ClientError, BotoCoreError):
            return False
        ref = f"{registry}/{self._repository(image)}:{image.rsplit(':', 1)[1]}"
        return self._remote_exists(client, ref, auth)
