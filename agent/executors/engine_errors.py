"""What the Docker engine failing looks like to an executor: the errors that mean "it
stopped answering" (`EngineErrors`), and how an engine error reads in a stage log: a
refusal (network not found, port already allocated, no such image) in the engine's own
words; "stopped answering" is kept for a lost connection."""

from __future__ import annotations

import docker
import requests


class EngineGone(RuntimeError):
    """The engine stopped answering (or is stopping) under a stage."""


EngineErrors = (requests.exceptions.RequestException, docker.errors.APIError, OSError, EngineGone)


def api_error(exc: docker.errors.APIError) -> str:
    return f"the Docker engine refused: {exc.explanation or exc} (HTTP {exc.status_code})"


def engine_error(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return api_error(exc)
    return f"the Docker engine stopped answering during the stage ({exc.__class__.__name__}: {exc})"
