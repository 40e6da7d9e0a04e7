"""What the triggers use of the running agent: its store, bus, engine, config and git
(`agent.runtime.Agent` is one; the runtime sits above the triggers, so they name this
protocol rather than import it)."""

from __future__ import annotations

from typing import Protocol

from agent.bus import Bus
from agent.config import AgentConfig
from agent.engine.engine import Engine
from agent.engine.workspace import Workspaces
from agent.triggers.changes import ChangeDetector
from store.store import Store


class AgentHandle(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def config(self) -> AgentConfig: ...

    @property
    def changes(self) -> ChangeDetector: ...

    @property
    def workspaces(self) -> Workspaces: ...
