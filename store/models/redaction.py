"""What of a service or pipeline may leave the agent: secrets masked always, credential-
looking settings masked for anyone but an admin."""

from __future__ import annotations

import re

from store.models.config import Pipeline, Service

SECRET_MASK = "********"


# Env names that hold credentials by convention, and a password in a URL's userinfo.
_CREDENTIAL_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|DSN|COOKIE",
                              re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")


def redact_env(env: dict[str, str]) -> dict[str, str]:
    """Env values a viewer may see: credential-looking names masked, URL passwords too."""
    return {k: SECRET_MASK if _CREDENTIAL_NAME.search(k)
            else _URL_PASSWORD.sub(rf"\g<1>{SECRET_MASK}@", v) for k, v in env.items()}


def redact_service(service: Service, *, admin: bool = False) -> Service:
    """The copy of a service that may leave the agent: secret values masked always; for
    anyone but an admin also credential-looking env values and a password in the repo URL."""
    update: dict[str, object] = {
        "secrets": {k: SECRET_MASK for k in service.secrets},
        "webhook_secret": SECRET_MASK if service.webhook_secret else None,
    }
    if not admin:
        update["env"] = redact_env(service.env)
        update["repo_url"] = _URL_PASSWORD.sub(rf"\g<1>{SECRET_MASK}@", service.repo_url)
    return service.model_copy(update=update)


def redact_pipeline(pipeline: Pipeline, *, admin: bool = False) -> Pipeline:
    """Webhook URLs carry their own credential: only an admin sees them."""
    if admin or not pipeline.notify_slack_webhook_url:
        return pipeline
    return pipeline.model_copy(update={"notify_slack_webhook_url": SECRET_MASK})
