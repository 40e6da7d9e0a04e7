"""Deleting a service that still serves: refused unless asked to tear it down, which
stops its colours, frees its stable ports (the fronts go) and removes its images."""

from __future__ import annotations

from agent.deploy.deployer import Deployer
from agent.deploy.docker_host import DockerHostTarget
from store.models import ENVIRONMENTS, Service
from store.store import Store


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
