"""Deleting a service that still serves: refused unless asked to tear it down, which
stops its colours, frees its stable ports (the fronts go) and removes its images."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from agent.deploy.deployer import Deployer
from agent.deploy.docker_host import DockerHostTarget
from store.models import ENVIRONMENTS, Service
from store.store import Store


class DeployInProgress(RuntimeError):
    """A deploy, rollback or reconcile of the service holds one of its environments."""


@contextmanager
def no_deploy_running(deployer: Deployer, service: Service) -> Iterator[None]:
    """Hold the deploy lock of each of `service`'s environments while it is deleted, so no
    deploy creates a colour the teardown misses, or switches to one it removed. Never
    waits (a deploy's health checks can take minutes): one in progress is refused."""
    with ExitStack() as held:
        for env in ENVIRONMENTS:
            lock = deployer.lock(service, env)
            if not lock.acquire(blocking=False):
                raise DeployInProgress(
                    f"a deploy or rollback of {service.name} to {env} is in progress: "
                    "delete the service when it has ended (or cancel its run)")
            held.callback(lock.release)
        yield


def live_environments(store: Store, service: Service) -> list[str]:
    """The environments where a deployment of `service` is active."""
    return [env for env in ENVIRONMENTS
            if store.current_deployment(service.id, env) is not None]


def teardown(store: Store, deployer: Deployer, service: Service) -> list[str]:
    """Stop what the service runs on its Docker targets; what was done, one line each."""
    pipeline = store.get_pipeline(service.pipeline)
    done: list[str] = []
    docker_target = None
    for env in ENVIRONMENTS:
        target = deployer.target_for(service, pipeline, env)
        if isinstance(target, DockerHostTarget):
            target.remove(service, env)
            docker_target = target
            done.append(f"{env}: colours stopped, stable port freed")
        elif target is not None and store.current_deployment(service.id, env) is not None:
            done.append(f"{env}: left running on its {type(target).__name__} "
                        "(remove it there, e.g. `seamless-agent env teardown`)")
    if docker_target is not None:
        removed = docker_target.remove_images(service)
        done.append(f"images removed: {len(removed)}")
    return done
