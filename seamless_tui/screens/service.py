"""Service view: run history, deployments per environment, DORA figures, config."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from seamless_tui.filters import RunFilter
from seamless_tui.fmt import (
    DEPLOY_ICONS,
    age,
    duration,
    first_line,
    run_label,
    run_status,
    short_sha,
    span,
    status_text,
)
from seamless_tui.links import run_link
from seamless_tui.screens.actions import ServiceActions
from seamless_tui.screens.base import BaseScreen
from seamless_tui.widgets.key_footer import KeyFooter
from seamless_tui.widgets.tables import Col, VimTable
from seamless_tui.widgets.topbar import TopBar
from store.models import (
    ENVIRONMENTS,
    ChangeDecision,
    Deployment,
    DoraFigures,
    Event,
    RunInfo,
    Service,
    ServiceTestFigures,
)

SECRET_FIELDS = {"secrets", "webhook_secret"}
DECISIONS_SHOWN = 3  # why the latest pushes ran the service or not (shared repositories)
RUN_COLUMNS = [Col("#", "#"), Col("trigger", "trigger", drop=2), Col("sha", "sha"),
               Col("branch", "branch", drop=1), Col("status", "status"),
               Col("took", "took", drop=3), Col("age", "age"),
               Col("message", "message", flex=True, min_width=12)]
DEPLOY_COLUMNS = [Col("env", "env"), Col("sha", "sha"), Col("status", "status"),
                  Col("kind", "kind", drop=2), Col("by", "by", drop=1), Col("when", "when"),
                  Col("message", "message", flex=True, min_width=12)]


class ServiceScreen(ServiceActions, BaseScreen):
    BINDINGS = [
        Binding("escape", "app.go_back", "back", id="service.back"),
        Binding("r", "rollback", "rollback", id="service.rollback"),
        Binding("c", "canary", "canary", id="service.canary"),
        Binding("u", "unpin", "unpin", id="service.unpin"),
        Binding("t", "trigger", "start run", id="service.trigger"),
        Binding("C", "clear_cache", "clear caches", show=False, id="service.clear_cache"),
        Binding("o", "open_link", "commit link", id="service.link"),
        Binding("slash", "filter", "filter runs", id="service.filter"),
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
        self.runs: list[RunInfo] = []
        self.deployments: list[Deployment] = []
        self.run_filter = RunFilter()

    def compose(self) -> ComposeResult:
        yield TopBar(f"Seamless › {self.service_name}")
        with TabbedContent(initial="runs"):
            with TabPane("1 Runs", id="runs"):
                yield Input(placeholder="filter runs: status:failed branch:main words "
                            "(enter applies, esc clears)", id="run-filter")
                yield VimTable(id="runs-table")
            with TabPane("2 Deploys", id="deploys"):
                yield VimTable(id="deploys-table")
            with TabPane("3 DORA", id="dora"):
                with VerticalScroll():
                    yield Static(id="dora-figures")
                    yield Static(id="test-figures")
            with TabPane("4 Config", id="config"):
                with VerticalScroll():
                    yield Static(id="config-text")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#runs-table", VimTable).focus()
        self.load_all()
        self.set_interval(5.0, self._tick)

    def _tick(self) -> None:
        """Ages and running timers move on their own."""
        self._render_runs()
        self._render_deployments()

    def load_all(self) -> None:
        name = self.service_name
        self.fetch(lambda: self.client.service(name), self.show_service)
        self._load_runs()
        self.fetch(lambda: self.client.deployments(name), self.show_deployments)
        self.fetch(lambda: self.client.dora(name), self.show_dora)
        self.fetch(lambda: self.client.test_figures(name), self.show_test_figures)
        self._load_decisions()

    def _load_decisions(self) -> None:
        name = self.service_name
        self.fetch(lambda: self.client.decisions(service=name, limit=DECISIONS_SHOWN),
                   self.show_decisions)

    async def show_decisions(self, decisions: list[ChangeDecision]) -> None:
        """A service of a shared repository: why the latest pushes ran it or not, above
        its runs (nothing is shown for a service that has no such decisions)."""
        if not decisions:
            return
        text = Text()
        for decision in decisions:
            text.append(f"{short_sha(decision.sha)} ", "dim")
            text.append("ran" if decision.ran else "not run",
                        "green" if decision.ran else "yellow")
            text.append(f"  {first_line(decision.reason, 160)}\n")
        text.rstrip()
        found = self.query("#service-why")
        if found:
            found.first(Static).update(text)
        else:
            await self.mount(Static(text, id="service-why"),
                             before=self.query_one("#runs-table"))

    def show_service(self, service: Service) -> None:
        self.service = service
        data = service.model_dump(mode="json", exclude={"id", "created_at", "updated_at"})
        lines = Text()
        for key, value in data.items():
            lines.append(f"{key}: ", style="bold")
            # what an admin let this service reach past its workspace: seen at a glance
            opted_in = key in ADMIN_OPT_INS and bool(value)
            lines.append(f"{_show(key, value)}\n", style="bold yellow" if opted_in else "")
        lines.append("\n" + "e: edit (admins)", style="dim")
        self.query_one("#config-text", Static).update(lines)

    def _load_runs(self) -> None:
        name, wanted = self.service_name, self.run_filter
        self.fetch(lambda: self.client.runs(service=name, limit=200, status=wanted.run_status(),
                                            branch=wanted.branch), self.show_runs)

    def show_runs(self, runs: list[RunInfo]) -> None:
        self.runs = runs
        self._render_runs()

    def _render_runs(self) -> None:
        now, wanted = self.now(), self.run_filter
        rows = [(str(run.id), [
            run_label(run.number), run.trigger.value, short_sha(run.sha),
            first_line(run.branch, 30), run_status(run),
            duration(span(run.started_at, run.finished_at, now)), age(run.created_at, now),
            first_line(run.message, 200)])
            for run in self.runs if wanted.accepts(run, run.message, run.author, run.sha)]
        self.query_one("#runs-table", VimTable).fill(RUN_COLUMNS, rows)

    def show_deployments(self, deployments: list[Deployment]) -> None:
        self.deployments = deployments
        self._render_deployments()

    def _render_deployments(self) -> None:
        now = self.now()
        pinned = self.service.pinned if self.service is not None else {}
        rows = []
        for dep in sorted(self.deployments, key=lambda d: (d.environment, -d.id)):
            env = Text(dep.environment, style="bold" if dep.current else "")
            if dep.current and dep.environment in pinned:
                env.append(" pin", "bold magenta")
            rows.append((str(dep.id), [
                env, short_sha(dep.sha), status_text(dep.status, DEPLOY_ICONS), dep.kind.value,
                first_line(dep.actor, 12), age(dep.started_at, now),
                first_line(dep.message, 200)]))
        self.query_one("#deploys-table", VimTable).fill(DEPLOY_COLUMNS, rows)

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

    def show_test_figures(self, figures: ServiceTestFigures) -> None:
        """Test results of the last 30 days (JUnit reports of Unit and Integration Test)."""
        text = Text(f"\nTests, last {figures.days} days\n\n", "bold")
        if not figures.runs:
            text.append("no JUnit reports yet (tests.reports in the service config)\n", "dim")
        else:
            text.append(f"runs with reports       {figures.runs}  ({figures.results:,} results)\n"
                        f"failure rate           {figures.failure_rate:.1%}\n"
                        f"flaky rate             {figures.flaky_rate:.1%}\n"
                        f"time lost to retries   {duration(figures.retry_s)} "
                        f"({figures.retries} retries)\n"
                        f"quarantined now        {figures.quarantined}\n")
            if figures.slowest:
                text.append("\nslowest tests (mean)\n", "bold")
                for slow in figures.slowest:
                    name = f"{slow.classname}::{slow.name}" if slow.classname else slow.name
                    text.append(f"{slow.mean_s:>9.3f} s  {name}\n")
        self.query_one("#test-figures", Static).update(text)

    def agent_event(self, ev: Event) -> None:
        if ev.type == "decision" and ev.data.get("service") == self.service_name:
            self._load_decisions()
            return
        if ev.run is not None and ev.run.service == self.service_name:
            self._load_runs()
            if ev.run.status.finished:
                name = self.service_name
                self.fetch(lambda: self.client.test_figures(name), self.show_test_figures)
        if ev.deployment is not None and ev.deployment.service == self.service_name:
            self.fetch(lambda: self.client.deployments(self.service_name),
                       self.show_deployments)
        if ev.service is not None and ev.service.name == self.service_name:
            self.show_service(ev.service)
            self._render_deployments()  # the pin may have changed

    def reload(self) -> None:
        self.load_all()

    @on(DataTable.RowSelected, "#runs-table")
    def _open_run(self, event: DataTable.RowSelected) -> None:
        run_id = int(str(event.row_key.value))
        self.seamless.open_run(run_id, known=next((r for r in self.runs if r.id == run_id), None))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        target = {"runs": "#runs-table", "deploys": "#deploys-table"}.get(tab)
        if target:
            self.query_one(target).focus()

    def action_rollback(self) -> None:
        self.seamless.open_rollback(self.service_name)

    def action_canary(self) -> None:
        from seamless_tui.screens.canary import CanaryScreen

        self.app.push_screen(CanaryScreen(self.service_name))

    def action_unpin(self) -> None:
        if self.service is not None:
            self.confirm_unpin(self.service, list(ENVIRONMENTS))

    def unpinned(self, service: Service) -> None:
        self.fetch(lambda: self.client.service(service.name), self.show_service)
        self.fetch(lambda: self.client.deployments(service.name), self.show_deployments)

    def action_clear_cache(self) -> None:
        self.confirm_clear_cache(self.service_name)

    def action_trigger(self) -> None:
        if self.service is not None:
            self.confirm_trigger(self.service)

    def action_open_link(self) -> None:
        key = self.query_one("#runs-table", VimTable).selected_key()
        run = next((r for r in self.runs if str(r.id) == key), None)
        if run is None or self.service is None:
            self.notify("Pick a run (j/k) to open its commit", severity="warning")
            return
        url = run_link(self.service.repo_url, run.sha, run.pr_number)
        if url is None:
            self.notify(f"{self.service.repo_url} has no web page to link to",
                        severity="warning")
            return
        self.app.copy_to_clipboard(url)  # OSC 52
        self.notify(url, title="Commit link (copied to the clipboard)", timeout=15)

    def action_filter(self) -> None:
        self.action_tab("runs")
        box = self.query_one("#run-filter", Input)
        box.add_class("visible")
        box.focus()

    @on(Input.Submitted, "#run-filter")
    def _filter(self, event: Input.Submitted) -> None:
        self.run_filter = RunFilter.parse(event.value)
        if self.run_filter.problem:
            self.notify(self.run_filter.problem, severity="warning")
        self.query_one("#runs-table", VimTable).focus()
        self._load_runs()

    def on_key(self, event) -> None:  # type: ignore[no-untyped-def]
        box = self.query_one("#run-filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.value = ""
            box.remove_class("visible")
            self.run_filter = RunFilter()
            self.query_one("#runs-table", VimTable).focus()
            self._load_runs()

    def action_edit(self) -> None:
        if self.seamless.role != "admin":
            self.notify(f"Editing a service needs the admin role; your token is "
                        f"'{self.seamless.role or 'unknown'}'.", severity="warning")
            return
        if self.service is not None:
            from seamless_tui.screens.config_form import ConfigForm

            self.app.push_screen(ConfigForm(self.service))


ADMIN_OPT_INS = ("compose_opt_ins", "mount_docker_socket")


def _show(key: str, value: Any) -> str:
    if key in SECRET_FIELDS and value:
        return "(set, hidden)" if not isinstance(value, dict) else ", ".join(value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "—"
    return "—" if value is None else str(value)
