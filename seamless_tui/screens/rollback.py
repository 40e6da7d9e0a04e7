"""Rollback picker: the deployable images of one environment, current one marked; enter asks
for confirmation (focused on Cancel) and then follows the rollback until healthy or failed."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static, Tab, Tabs

from seamless_tui.client import ApiError
from seamless_tui.fmt import DEPLOY_ICONS, age, first_line, short_sha, status_text
from seamless_tui.screens.actions import ServiceActions
from seamless_tui.screens.base import BaseScreen
from seamless_tui.screens.confirm import ConfirmModal
from seamless_tui.widgets.key_footer import KeyFooter
from seamless_tui.widgets.tables import Col, VimTable
from seamless_tui.widgets.topbar import TopBar
from store.models import ENVIRONMENTS, Deployment, DeploymentStatus, Event, Service

HINT = "enter: roll back to the selected image"
COLUMNS = [Col("mark", ""), Col("sha", "sha"), Col("message", "message", flex=True, min_width=12),
           Col("author", "author", drop=2), Col("deployed", "deployed"),
           Col("by", "by", drop=1), Col("status", "status")]


class RollbackScreen(ServiceActions, BaseScreen):
    BINDINGS = [
        Binding("escape", "app.go_back", "back", id="rollback.back"),
        Binding("e", "next_env", "environment", id="rollback.environment"),
        Binding("u", "unpin", "unpin", id="rollback.unpin"),
    ]

    def __init__(self, service: str, environment: str = "production") -> None:
        super().__init__()
        self.service_name, self.environment = service, environment
        self.deployments: list[Deployment] = []
        self.service: Service | None = None
        self.watching: int | None = None  # the rollback deployment in progress
        self.outcome_shown = False  # a rollback's result is on show (until the next one)
        self.own_line = True  # the line shows the picker's own note (not an action's answer)
        self.loaded = False  # the deployments of this environment have been answered
        self.fetch_early(lambda: self.client.deployments(service, environment),
                         self.show_deployments)
        self.fetch_early(lambda: self.client.service(service), self.show_service)

    def compose(self) -> ComposeResult:
        yield TopBar(f"Seamless › {self.service_name} › rollback")
        yield Tabs(*[Tab(env, id=env) for env in ENVIRONMENTS], active=self.environment)
        yield VimTable(id="images")
        yield Static(HINT, id="progress")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()
        self.load()

    def load(self) -> None:
        name, env = self.service_name, self.environment
        self.fetch(lambda: self.client.deployments(name, env), self.show_deployments)
        self.fetch(lambda: self.client.service(name), self.show_service)

    def show_service(self, service: Service) -> None:
        self.service = service
        self._render_images()

    def show_deployments(self, deployments: list[Deployment]) -> None:
        watched = next((d for d in deployments if d.id == self.watching), None)
        self.deployments = _deployable(deployments)
        self.loaded = True
        self._render_images()
        if watched is not None and watched.status is not DeploymentStatus.in_progress:
            self._progress(watched)  # it ended before the answer to our POST came back

    def _render_images(self) -> None:
        now = self.now()
        pin = self.service.pinned.get(self.environment) if self.service is not None else None
        rows = []
        for dep in self.deployments:
            mark = Text("▶", "bold green") if dep.current else Text(" ")
            status = status_text(dep.status, DEPLOY_ICONS)
            if dep.current and pin:
                status.append(" pin", "bold magenta")
            rows.append((str(dep.id), [
                mark, Text(short_sha(dep.sha), "bold" if dep.current else ""),
                first_line(dep.message, 200), first_line(dep.author, 12),
                age(dep.finished_at or dep.started_at, now) + " ago", first_line(dep.actor, 12),
                status]))
        self.query_one(VimTable).fill(COLUMNS, rows)
        # The service and its deployments are answered in either order: the line says what
        # both answers known so far show, never "no deployments" before they were answered.
        if self.watching is not None or self.outcome_shown:
            return  # a rollback's progress or outcome stays on show
        if self.loaded and not self.deployments:
            self._say(f"no deployments to {self.environment} yet")
        elif pin:
            self._say(Text.assemble(
                (f"{self.environment} is pinned at {short_sha(pin)}", "bold magenta"),
                ": pushes skip this deploy until unpinned (u). enter: roll back"))
        elif self.own_line:
            self._say(HINT)

    def _say(self, note: str | Text) -> None:
        self.query_one("#progress", Static).update(note)
        self.own_line = True

    @on(Tabs.TabActivated)
    def _env(self, event: Tabs.TabActivated) -> None:
        if event.tab.id and event.tab.id != self.environment:
            self.environment = event.tab.id
            self.outcome_shown, self.loaded, self.own_line = False, False, True
            self.load()

    def action_next_env(self) -> None:
        self.query_one(Tabs).action_next_tab()

    def action_unpin(self) -> None:
        # Ask the agent: right after a rollback the pin it set may not be loaded here yet.
        name, env = self.service_name, self.environment
        self.seamless.hold_keys()  # `u` `y` typed fast: the `y` is for the dialog

        def ask_unpin(service: Service) -> None:
            self.show_service(service)
            self.confirm_unpin(service, [env])

        self.fetch(lambda: self.client.service(name), ask_unpin)

    def unpinned(self, service: Service) -> None:
        self.query_one("#progress", Static).update(
            f"{self.environment} unpinned: later runs deploy there again")
        self.own_line = False
        self.show_service(service)

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
        self.outcome_shown, self.own_line = False, False
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
            self.outcome_shown = True  # the pin note must not replace the outcome at once
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

# Never served all traffic: nothing to roll back to.
_NEVER_LIVE = (DeploymentStatus.failed, DeploymentStatus.interrupted)


def _deployable(deployments: list[Deployment]) -> list[Deployment]:
    """Newest deployment per sha, newest first; failed ones and missing images left out."""
    seen: set[str] = set()
    out = []
    for dep in sorted(deployments, key=lambda d: -d.id):
        if dep.sha in seen or dep.status in _NEVER_LIVE or dep.image_exists is False:
            continue
        seen.add(dep.sha)
        out.append(dep)
    return out
