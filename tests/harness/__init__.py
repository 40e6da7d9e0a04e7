"""The test harness: one way to start an agent, one way to wait, fakes for what reaches
outside the agent (see agents.py, waiting.py, fakes.py)."""

from tests.harness.agents import AgentProcess, Fakes, agent_config, agent_running
from tests.harness.fakes import FakeExecutor, FakeOutcome, FakeTarget, FakeWorkspaces
from tests.harness.waiting import wait_event, wait_run, wait_until

__all__ = ["AgentProcess", "FakeExecutor", "FakeOutcome", "FakeTarget", "FakeWorkspaces",
           "Fakes", "agent_config", "agent_running", "wait_event", "wait_run", "wait_until"]
