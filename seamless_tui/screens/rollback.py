"""Rollback picker: the deployable images of one environment, current one marked; enter asks
for confirmation (focused on Cancel) and then follows the rollback until healthy or failed."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static, Tab, Tabs

from seamless_tui.client import ApiError
from seamless_tui.fmt import DEPLOY_ICONS, age, first_line, short_sha, status_text
from seamless_tui.screens.base import BaseScreen
from seamless_tui.screens.confirm import ConfirmModal
from seamless_tui.widgets.tables import VimTable
from seamless_tui.widgets.topbar import TopBar
from store.models import ENVIRONMENTS, Deployment, DeploymentStatus, Event


class RollbackScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "app.go_back", "back", id="rollback.back"),
        Binding("e", "next_env", "environment", id="rollback.environment"),
    ]

    def __init__(self, service: str, environment: str = "production") -> None:
        super().__init__()
        self.service_name, self.environment = service, environment
        self.deployments: list[Deployment] = []
        self.watching: int | None = None  # the rollback deployment in progress

    def compose(self) -> ComposeResult:
        yield TopBar(f"Seamless › {self.service_name} › rollback")
        yield Tabs(*[Tab(env, id=env) for env in ENVIRONMENTS], active=self.environment)
        yield VimTable(id="images")
        yield Static("enter: roll back to the selected image", id="progress")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(VimTable)
        for label, width in (("", 1), ("sha", 7), ("message", 22), ("author", 8),
                             ("deployed", 8), ("by", 8), ("status", 12)):
            table.add_column(label, width=width, key=label or "mark")
        table.focus()
        self.load()

    def load(self) -> None:
        name, env = self.service_name, self.environment
        self.fetch(lambda: self.client.deployments(name, env), self.show_deployments)

    def show_deployments(self, deployments: list[Deployment]) -> None:
        self.deployments = _deployable(deployments)
        table = self.query_one(VimTable)
        table.clear()
        now = self.now()
        for dep in self.deployments:
            mark = Text("▶", "bold green") if dep.current else Text(" ")
            table.add_row(mark, Text(short_sha(dep.sha), "bold" if dep.current else ""),
                          first_line(dep.message, 22), first_line(dep.author, 8),
                          age(dep.finished_at or dep.started_at, now) + " ago",
                          first_line(dep.actor, 8), status_text(dep.status, DEPLOY_ICONS),
                          key=str(dep.id))
        if not self.deployments:
            self.query_one("#progress", Static).update(
                f"no deployments to {self.environment} yet")

    @on(Tabs.TabActivated)
    def _env(self, event: Tabs.TabActivated) -> None:
        if event.tab.id and event.tab.id != self.environment:
            self.environment = event.tab.id
            self.load()

    def action_next_env(self) -> None:
        self.query_one(Tabs).action_next_tab()

    @on(DataTable.RowSelected, "#images")
    def _pick(self, event: DataTable.RowSelected) -> None:
        target = next((d for d in self.deployments if str(d.id) == event.row_key.value), None)
        if target is None:
            return
        current = next((d for d in self.deployments if d.current), None)
        if current is not None and current.sha == target.sha:
            self.notify(f"{short_sha(target.sha)} is already live in {self.environment}",
                        severity="warning")
            return
        question = Text.assemble(
            "Roll back ", (self.service_name, "bold"), " in ", (self.environment, "bold"), "\n",
            "from ", (short_sha(current.sha if current else None), "bold"),
            " to ", (short_sha(target.sha), "bold"), f"  {first_line(target.message, 40)}")
        self.app.push_screen(ConfirmModal(question, confirm="Roll back"),
                             lambda ok: self._start(target.sha) if ok else None)

    def _start(self, sha: str) -> None:
        self.query_one("#progress", Static).update(f"● rolling back to {short_sha(sha)}…")

        async def start() -> Deployment | ApiError:
            try:
                return await self.client.rollback(self.service_name, self.environment, sha)
            except ApiError as exc:
                return exc

        self.fetch(start, self.show_started)

    def show_started(self, result: Deployment | ApiError) -> None:
        if isinstance(result, ApiError):
            self.query_one("#progress", Static).update(Text(f"✗ {result.message}", "bold red"))
            return
        self.watching = result.id
        self._progress(result)

    def _progress(self, dep: Deployment) -> None:
        text = {DeploymentStatus.in_progress: f"● rolling back to {short_sha(dep.sha)}: "
                                              "deploying, waiting for health…",
                DeploymentStatus.active: f"✓ {short_sha(dep.sha)} is live and healthy in "
                                         f"{dep.environment}",
                DeploymentStatus.failed: f"✗ rollback to {short_sha(dep.sha)} failed: "
                                         f"{dep.error or 'see the agent log'}"}.get(
            dep.status, f"{dep.status.value}")
        self.query_one("#progress", Static).update(text)
        if dep.status is not DeploymentStatus.in_progress:
            self.watching = None
            self.load()

    def reload(self) -> None:
        self.load()

    def agent_event(self, event: Event) -> None:
        dep = event.deployment
        if dep is None or dep.service != self.service_name:
            return
        if dep.id == self.watching:
            self._progress(dep)
        elif dep.environment == self.environment:
            self.load()


def _deployable(deployments: list[Deployment]) -> list[Deployment]:
    """Newest deployment per sha, newest first; failed ones and missing images left out."""
    seen: set[str] = set()
    out = []
    for dep in sorted(deployments, key=lambda d: -d.id):
        if dep.sha in seen or dep.status is DeploymentStatus.failed or dep.image_exists is False:
            continue
        seen.add(dep.sha)
        out.append(dep)
    return out
