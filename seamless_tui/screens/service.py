"""Service view: run history, deployments per environment, DORA figures, config."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from seamless_tui.fmt import DEPLOY_ICONS, age, duration, first_line, short_sha, span, status_text
from seamless_tui.screens.base import BaseScreen
from seamless_tui.widgets.tables import VimTable
from seamless_tui.widgets.topbar import TopBar
from store.models import Deployment, DoraFigures, Event, RunInfo, Service

SECRET_FIELDS = {"secrets", "webhook_secret"}


class ServiceScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "app.go_back", "back", id="service.back"),
        Binding("r", "rollback", "rollback", id="service.rollback"),
        Binding("e", "edit", "edit config", id="service.edit"),
        Binding("1", "tab('runs')", "runs", show=False, id="service.tab_runs"),
        Binding("2", "tab('deploys')", "deploys", show=False, id="service.tab_deploys"),
        Binding("3", "tab('dora')", "dora", show=False, id="service.tab_dora"),
        Binding("4", "tab('config')", "config", show=False, id="service.tab_config"),
    ]

    def __init__(self, name: str) -> None:
        super().__init__()
        self.service_name = name
        self.service: Service | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"Seamless › {self.service_name}")
        with TabbedContent(initial="runs"):
            with TabPane("1 Runs", id="runs"):
                yield VimTable(id="runs-table")
            with TabPane("2 Deploys", id="deploys"):
                yield VimTable(id="deploys-table")
            with TabPane("3 DORA", id="dora"):
                yield Static(id="dora-figures")
            with TabPane("4 Config", id="config"):
                with VerticalScroll():
                    yield Static(id="config-text")
        yield Footer()

    def on_mount(self) -> None:
        runs = self.query_one("#runs-table", VimTable)
        for label, width in (("#", 5), ("trigger", 8), ("sha", 7), ("message", 20),
                             ("status", 10), ("took", 6), ("age", 4)):
            runs.add_column(label, width=width, key=label)
        deploys = self.query_one("#deploys-table", VimTable)
        for label, width in (("env", 10), ("sha", 7), ("status", 11), ("kind", 8),
                             ("by", 8), ("when", 4), ("message", 16)):
            deploys.add_column(label, width=width, key=label)
        runs.focus()
        self.load_all()

    def load_all(self) -> None:
        name = self.service_name
        self.fetch(lambda: self.client.service(name), self.show_service)
        self.fetch(lambda: self.client.runs(service=name, limit=100), self.show_runs)
        self.fetch(lambda: self.client.deployments(name), self.show_deployments)
        self.fetch(lambda: self.client.dora(name), self.show_dora)

    def show_service(self, service: Service) -> None:
        self.service = service
        data = service.model_dump(mode="json", exclude={"id", "created_at", "updated_at"})
        lines = Text()
        for key, value in data.items():
            lines.append(f"{key}: ", style="bold")
            lines.append(f"{_show(key, value)}\n")
        lines.append("\n" + "e: edit (admins)", style="dim")
        self.query_one("#config-text", Static).update(lines)

    def show_runs(self, runs: list[RunInfo]) -> None:
        table = self.query_one("#runs-table", VimTable)
        selected = table.selected_key()
        table.clear()
        now = self.now()
        for run in runs:
            table.add_row(str(run.number), run.trigger.value, short_sha(run.sha),
                          first_line(run.message, 20), status_text(run.status),
                          duration(span(run.started_at, run.finished_at, now)),
                          age(run.created_at, now), key=str(run.id))
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)

    def show_deployments(self, deployments: list[Deployment]) -> None:
        table = self.query_one("#deploys-table", VimTable)
        table.clear()
        now = self.now()
        for dep in sorted(deployments, key=lambda d: (d.environment, -d.id)):
            env = Text(dep.environment, style="bold" if dep.current else "")
            table.add_row(env, short_sha(dep.sha), status_text(dep.status, DEPLOY_ICONS),
                          dep.kind.value, first_line(dep.actor, 8), age(dep.started_at, now),
                          first_line(dep.message, 16), key=str(dep.id))

    def show_dora(self, dora: DoraFigures) -> None:
        def hours(s: float | None) -> str:
            return "—" if s is None else duration(s)

        rate = "—" if dora.change_failure_rate is None else f"{dora.change_failure_rate:.0%}"
        self.query_one("#dora-figures", Static).update(Text.assemble(
            (f"DORA, last {dora.window_days} days\n\n", "bold"),
            f"deployments            {dora.deployments}\n",
            f"deployment frequency   {dora.deployment_frequency_per_day:.2f} / day\n",
            f"lead time (median)     {hours(dora.lead_time_median_s)}\n",
            f"change failure rate    {rate}\n",
            f"time to restore        {hours(dora.time_to_restore_median_s)}\n"))

    def agent_event(self, ev: Event) -> None:
        if ev.run is not None and ev.run.service == self.service_name:
            self.fetch(lambda: self.client.runs(service=self.service_name, limit=100),
                       self.show_runs)
        if ev.deployment is not None and ev.deployment.service == self.service_name:
            self.fetch(lambda: self.client.deployments(self.service_name),
                       self.show_deployments)
        if ev.service is not None and ev.service.name == self.service_name:
            self.show_service(ev.service)

    def reload(self) -> None:
        self.load_all()

    @on(DataTable.RowSelected, "#runs-table")
    def _open_run(self, event: DataTable.RowSelected) -> None:
        self.seamless.open_run(int(str(event.row_key.value)))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = {"runs": "#runs-table", "deploys": "#deploys-table"}.get(tab)
        if target:
            self.query_one(target).focus()

    def action_rollback(self) -> None:
        self.seamless.open_rollback(self.service_name)

    def action_edit(self) -> None:
        if self.seamless.role != "admin":
            self.notify(f"Editing a service needs the admin role; your token is "
                        f"'{self.seamless.role or 'unknown'}'.", severity="warning")
            return
        if self.service is not None:
            from seamless_tui.screens.config_form import ConfigForm

            self.app.push_screen(ConfigForm(self.service))


def _show(key: str, value: Any) -> str:
    if key in SECRET_FIELDS and value:
        return "(set, hidden)" if not isinstance(value, dict) else ", ".join(value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "—"
    return "—" if value is None else str(value)
