"""One masker for everything that leaves the agent.

`SecretBook` knows every secret the agent holds — service secrets, webhook
secrets, Slack webhook URLs (from the store) and the agent's own (the GitHub
token) — and keeps one `SecretMasker` over all of them, rebuilt when a
pipeline or service changes. The agent hangs it on every way out: stored
errors and health answers (`store.redact`), bus events (and so /ws/events,
notifications and commit statuses), every API response body, and each stage
log (whose masker adds the stage's own secrets).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel

from agent.logs.masking import SecretMasker
from store.store import Store


class SecretBook:
    def __init__(self, store: Store, own: Callable[[], Iterable[str]] = tuple) -> None:
        self.store = store
        self._own = own
        self._lock = threading.Lock()
        self._version = -1
        self._secrets: tuple[str, ...] = ()
        self._masker = SecretMasker(())

    def secrets(self) -> tuple[str, ...]:
        self._refresh()
        return self._secrets

    def masker(self) -> SecretMasker:
        self._refresh()
        return self._masker

    def mask(self, text: str) -> str:
        return self.masker().mask(text)

    def mask_model(self, model: Any) -> Any:
        """A pydantic model with every string masked (the same object when clean)."""
        masker = self.masker()
        if not masker.active or not isinstance(model, BaseModel):
            return model
        raw = model.model_dump_json()
        masked = masker.mask(raw)
        return model if masked == raw else type(model).model_validate_json(masked)

    def _refresh(self) -> None:
        version = self.store.config_version
        if version == self._version:
            return
        with self._lock:
            if version == self._version:
                return
            secrets = tuple(dict.fromkeys([*self.store.secret_values(), *self._own()]))
            if secrets != self._secrets:
                self._masker = SecretMasker(secrets)
                self._secrets = secrets
            self._version = version
