"""Dashboard: every pipeline and its services, live; pending approvals stand out on top."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, OptionList
from textual.widgets.option_list import Option

from seamless_tui.filters import RunFilter
from seamless_tui.fmt import (
    APPROVAL_ICON,
    age,
    duration,
    first_line,
    run_label,
    run_status,
    short_sha,
    span,
)
from seamless_tui.screens.actions import ServiceActions
from seamless_tui.screens.base import BaseScreen
from seamless_tui.widgets.key_footer import KeyFooter
from seamless_tui.widgets.stage_cells import stage_cells
from seamless_tui.widgets.tables import Col, VimTable
from seamless_tui.widgets.topbar import TopBar
from store.models import (
    ApprovalStatus,
    Deployment,
    DeploymentStatus,
    Event,
    RunInfo,
    RunStatus,
    ServiceOverview,
)

COLUMNS = [Col("service", "service", min_width=7), Col("status", "status"),
           Col("stages", "stages"), Col("commit", "commit"), Col("branch", "branch", drop=3),
           Col("author", "author", drop=2), Col("age", "age"), Col("took", "took", drop=4),
           Col("staging", "staging"), Col("prod", "prod"),
           Col("message", "message", flex=True, drop=5, min_width=10)]
SORTS = ("pipeline", "status", "age")
AGES_EVERY_S = 5.0  # ages repaint this often; running timers every second
_STATUS_RANK = {"failed": 0, "awaiting_approval": 1, "running": 2, "queued": 3}


class DashboardScreen(ServiceActions, BaseScreen):
    BINDINGS = [
        Binding("slash", "filter", "filter", id="dashboard.filter"),
        Binding("s", "sort", "sort", id="dashboard.sort"),
        Binding("a", "approve", "approve", id="dashboard.approve"),
        Binding("p", "approvals", "approvals", show=False, id="dashboard.approvals"),
        Binding("l", "last_run", "last run", id="dashboard.last_run"),
        Binding("r", "rollback", "rollback", id="dashboard.rollback"),
        Binding("t", "trigger", "start run", id="dashboard.trigger"),
        Binding("escape", "clear_filter", "clear", show=False, id="dashboard.clear_filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, ServiceOverview] = {}
        self.filter_text = ""
        self.sort_key = "pipeline"
        self._since_ages = 0.0
        self._approvals_shown: list[tuple[str, Text]] | None = None

    def compose(self) -> ComposeResult:
        yield TopBar("Seamless · pipelines")
        yield OptionList(id="approvals")
        yield Input(placeholder="filter services (enter to apply, esc to clear)", id="filter")
        yield VimTable(id="services")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()
        self.refresh_data()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        """Ages and running timers move on their own, not only when an event comes."""
        self._since_ages += 1.0
        running = any(r.last_run and r.last_run.status is RunStatus.running
                      for r in self.rows.values())
        if running or self._since_ages >= AGES_EVERY_S:
            self._since_ages = 0.0
            self.render_rows()

    def refresh_data(self) -> None:
        self.fetch(self.client.overview, self.show_overview)

    def show_overview(self, rows: list[ServiceOverview]) -> None:
        self.rows = {r.service.name: r for r in rows}
        self.seamless.known_approvals(r.pending_approval.id for r in rows
                                      if r.pending_approval)
        self.render_rows()

    # -- rendering ----------------------------------------------------------------------------
    def _visible(self) -> list[ServiceOverview]:
        wanted = RunFilter.parse(self.filter_text)
        rows = [r for r in self.rows.values() if wanted.accepts(
            r.last_run, r.pipeline, r.service.name, r.last_run.author if r.last_run else "",
            r.last_run.status if r.last_run else "")]
        if self.sort_key == "status":
            rows.sort(key=lambda r: (_STATUS_RANK.get(r.last_run.status if r.last_run else "", 9),
                                     r.service.name))
        elif self.sort_key == "age":
            rows.sort(key=lambda r: -(r.last_run.created_at.timestamp() if r.last_run else 0))
        else:
            rows.sort(key=lambda r: (r.pipeline, r.service.name))
        return rows

    def render_rows(self) -> None:
        now, pipeline = self.now(), None
        out: list[tuple[str, list[object]]] = []
        for row in self._visible():
            if self.sort_key == "pipeline" and row.pipeline != pipeline:
                pipeline = row.pipeline
                out.append((f"pipeline:{pipeline}", [Text(f"▾ {pipeline}", style="bold")]))
            run = row.last_run
            cells: list[object] = [Text(first_line(row.service.name, 40))]
            if run is None:
                cells += [Text("no runs", style="dim"), stage_cells(None), "", "", "", "", ""]
            else:
                cells += [run_status(run), stage_cells(run), short_sha(run.sha),
                          first_line(run.branch, 24), first_line(run.author, 12),
                          age(run.created_at, now),
                          duration(span(run.started_at, run.finished_at, now))]
            pins = row.service.pinned
            cells += [_deployed(row.staging, pins.get("staging")),
                      _deployed(row.production, pins.get("production")),
                      first_line(run.message if run else "", 200)]
            out.append((row.service.name, cells))
        self.query_one(VimTable).fill(COLUMNS, out)
        self._render_approvals()
        wanted = RunFilter.parse(self.filter_text)
        self.query_one(TopBar).set_crumb(
            f"Seamless · {len(self.rows)} services · sort: {self.sort_key}"
            + (f" · filter: {self.filter_text}" if self.filter_text else "")
            + (" (not understood)" if wanted.problem else ""))

    def _render_approvals(self) -> None:
        panel = self.query_one("#approvals", OptionList)
        pending = [r for r in self.rows.values() if r.pending_approval
                   and r.pending_approval.status is ApprovalStatus.pending]
        options = []
        for row in sorted(pending, key=lambda r: r.service.name):
            ap = row.pending_approval
            assert ap is not None
            options.append((str(ap.run_id), Text.assemble(
                (f"{APPROVAL_ICON} ", "bold"), (row.service.name, "bold"),
                f" {_run_number(row)}  ",
                f"{short_sha(ap.production_sha)} → {short_sha(ap.candidate_sha)}")))
        if options == self._approvals_shown:
            return  # every event and every tick renders the rows: the panel only on a change
        self._approvals_shown = options
        highlighted = panel.highlighted  # a live event re-renders: keep the reader's place
        panel.clear_options()
        for run_id, prompt in options:
            panel.add_option(Option(prompt, id=run_id))
        if highlighted is not None and pending:
            panel.highlighted = min(highlighted, len(pending) - 1)
        panel.border_title = (f"{APPROVAL_ICON} {len(pending)} awaiting approval"
                              " — p, then enter to review")
        panel.display = bool(pending)

    # -- live updates -------------------------------------------------------------------------
    def agent_event(self, event: Event) -> None:
        if apply_event(self.rows, event):
            self.render_rows()
        elif event.type == "service":
            self.refresh_data()

    def reload(self) -> None:
        self.refresh_data()

    # -- actions ------------------------------------------------------------------------------
    def _selected(self) -> ServiceOverview | None:
        key = self.query_one(VimTable).selected_key()
        return self.rows.get(key or "")

    @on(DataTable.RowSelected, "#services")
    def _drill(self, event: DataTable.RowSelected) -> None:
        name = str(event.row_key.value)
        if name in self.rows:
            self.seamless.open_service(name)

    @on(OptionList.OptionSelected, "#approvals")
    def _review(self, event: OptionList.OptionSelected) -> None:
        self.seamless.open_approval(int(event.option.id or 0))

    def action_approve(self) -> None:
        row = self._selected()
        if row is None or row.pending_approval is None:
            pending = [r for r in self.rows.values() if r.pending_approval]
            row = pending[0] if len(pending) == 1 else None
        if row is None or row.pending_approval is None:
            self.notify("No pending approval for this service", severity="warning")
            return
        self.seamless.open_approval(row.pending_approval.run_id)

    def action_approvals(self) -> None:
        panel = self.query_one("#approvals", OptionList)
        if panel.display:
            panel.focus()
            panel.highlighted = 0

    def _group(self) -> list[ServiceOverview]:
        """On a pipeline row: the services under it."""
        key = self.query_one(VimTable).selected_key() or ""
        if not key.startswith("pipeline:"):
            return []
        return [r for r in self.rows.values() if r.pipeline == key.removeprefix("pipeline:")]

    def action_last_run(self) -> None:
        row = self._selected()
        runs: list[RunInfo] = []
        if row is not None:
            if row.last_run is None:
                self.notify(f"{row.service.name} has no runs yet: t starts one",
                            severity="warning")
                return
            runs = [row.last_run]
        else:  # a pipeline row: its newest run
            runs = [r.last_run for r in self._group() if r.last_run is not None]
        if not runs:
            self.notify("No runs here yet: pick a service row (j/k), t starts a run",
                        severity="warning")
            return
        newest = max(runs, key=lambda r: r.id)
        self.seamless.open_run(newest.id, known=newest)

    def action_trigger(self) -> None:
        row = self._selected()
        if row is None:
            self.notify("Pick a service row (j/k) to start a run of its branch head",
                        severity="warning")
            return
        self.confirm_trigger(row.service)

    def action_rollback(self) -> None:
        row = self._selected()
        if row is None:
            self.notify("Pick a service row (j/k) to roll back", severity="warning")
            return
        self.seamless.open_rollback(row.service.name)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.render_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        problem = RunFilter.parse(self.filter_text).problem
        if problem:
            self.notify(problem, severity="warning")
        self.query_one(VimTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value, box.display = "", False
        self.filter_text = ""
        self.render_rows()
        self.query_one(VimTable).focus()

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.render_rows()


def _deployed(dep: Deployment | None, pinned: str | None) -> Text:
    """The live sha; ` pin` when a rollback pinned the environment (u unpins it)."""
    sha = dep.sha if dep is not None else None
    out = Text(short_sha(sha), style="" if sha else "dim")
    if pinned:
        out.append(" pin", "bold magenta")
    return out


def _run_number(row: ServiceOverview) -> str:
    ap = row.pending_approval
    if row.last_run is not None and ap is not None and row.last_run.id == ap.run_id:
        return run_label(row.last_run.number)
    return ""


def apply_event(rows: dict[str, ServiceOverview], event: Event) -> bool:
    """Fold one live event into the dashboard rows; True when something shown changed.
    An event may carry several parts (an approval comes with its run): each is folded."""
    changed = False
    if event.run is not None and event.run.service in rows:
        row = rows[event.run.service]
        if row.last_run is None or event.run.id >= row.last_run.id:
            stages = event.run.stages or (row.last_run.stages if row.last_run
                                          and row.last_run.id == event.run.id else [])
            row.last_run = event.run.model_copy(update={"stages": stages})
            changed = True
    if event.stage is not None:
        for row in rows.values():
            run = row.last_run
            if run is not None and run.id == event.stage.run_id:
                run.stages = [event.stage if s.name == event.stage.name else s
                              for s in run.stages]
                changed = True
                break
    if event.approval is not None and event.approval.service in rows:
        row = rows[event.approval.service]
        pending = event.approval.status is ApprovalStatus.pending
        if pending or (row.pending_approval and row.pending_approval.run_id
                       == event.approval.run_id):
            row.pending_approval = event.approval if pending else None
            changed = True
    if event.deployment is not None and event.deployment.service in rows:
        dep = event.deployment
        if dep.status is DeploymentStatus.active and dep.environment in ("staging", "production"):
            setattr(rows[dep.service], dep.environment, dep)
            changed = True
    return changed
