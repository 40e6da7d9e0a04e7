"""Repository webhooks created and deleted with services.

Called by the API after a service is created or deleted (see the report / docs). GitHub
failures never undo the service change: they come back as a `HookOutcome` to show the user.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

from agent.config import AgentConfig
from agent.github_api import GitHubClient, GitHubError, GitHubNotFound, parse_github_repo, web_host
from agent.onboarding.secrets import github_token
from store.models import Service, ServiceConfig
from store.store import Store

log = logging.getLogger(__name__)


class AgentLike(Protocol):
    config: AgentConfig
    store: Store


@dataclass
class HookOutcome:
    action: str  # created | deleted | skipped | failed
    message: str
    hook_id: int | None = None


def hook_key(service_name: str) -> str:
    return f"github_hook:{service_name}"


def webhook_url(config: AgentConfig) -> str | None:
    return f"{config.public_url.rstrip('/')}/webhooks/github" if config.public_url else None


def github_target(config: AgentConfig,
                  service: Service) -> tuple[str, str, str] | HookOutcome:
    """(token, owner, repo), or why no hook is managed for this service."""
    repo = parse_github_repo(service.repo_url, web_host(config.github_api_url))
    if repo is None:
        return HookOutcome("skipped", f"{service.repo_url} is not a repository on "
                           f"{web_host(config.github_api_url)}: no webhook managed")
    token = github_token(config)
    if not token:
        return HookOutcome("skipped", "no GitHub token configured (`seamless-agent init "
                           "--github-token …`): create the webhook by hand or rely on polling")
    return token, *repo


def on_service_created(agent: AgentLike, service: Service) -> HookOutcome:
    """Create (or re-point) the repo's webhook with a fresh secret stored on the service."""
    target = github_target(agent.config, service)
    if isinstance(target, HookOutcome):
        return target
    url = webhook_url(agent.config)
    if url is None:
        return HookOutcome("skipped", "public_url is not set, so GitHub cannot reach this agent;"
                           " set it with `seamless-agent init --public-url https://…`")
    token, owner, repo = target
    secret = secrets.token_hex(32)
    # Store the secret first: GitHub sends a signed `ping` the moment the hook exists.
    config = ServiceConfig(**service.model_dump(include=set(ServiceConfig.model_fields)))
    agent.store.update_service(service.name, config.model_copy(update={"webhook_secret": secret}))
    try:
        with GitHubClient(token, agent.config.github_api_url) as gh:
            hook_id = gh.create_hook(owner, repo, url, secret)
    except GitHubError as exc:
        log.warning("webhook for %s not created: %s", service.name, exc)
        return HookOutcome("failed", f"webhook for {owner}/{repo} not created: {exc}")
    agent.store.set_setting(hook_key(service.name), str(hook_id))
    return HookOutcome("created", f"webhook {hook_id} on {owner}/{repo} → {url}", hook_id)


def on_service_deleted(agent: AgentLike, service: Service) -> HookOutcome:
    """Delete the webhook this agent created for the service (a hook already gone is fine)."""
    stored = agent.store.get_setting(hook_key(service.name))
    if not stored:
        return HookOutcome("skipped", f"no webhook recorded for {service.name}")
    target = github_target(agent.config, service)
    if isinstance(target, HookOutcome):
        return target
    token, owner, repo = target
    hook_id = int(stored)
    try:
        with GitHubClient(token, agent.config.github_api_url) as gh:
            gh.delete_hook(owner, repo, hook_id)
    except GitHubNotFound:
        pass  # deleted by hand on GitHub already: nothing left to do
    except GitHubError as exc:
        log.warning("webhook %s of %s not deleted: %s", hook_id, service.name, exc)
        return HookOutcome("failed", f"webhook {hook_id} on {owner}/{repo} not deleted: {exc}",
                           hook_id)
    agent.store.delete_setting(hook_key(service.name))
    return HookOutcome("deleted", f"webhook {hook_id} on {owner}/{repo} deleted", hook_id)
