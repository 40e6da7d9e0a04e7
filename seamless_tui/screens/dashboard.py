"""Dashboard: every pipeline and its services, live; pending approvals stand out on top."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, OptionList
from textual.widgets.option_list import Option

from seamless_tui.fmt import age, duration, first_line, short_sha, span, status_text
from seamless_tui.messages import AgentEvent, Reconnected
from seamless_tui.screens.base import BaseScreen
from seamless_tui.widgets.stage_cells import stage_cells
from seamless_tui.widgets.tables import VimTable
from seamless_tui.widgets.topbar import TopBar
from store.models import ApprovalStatus, DeploymentStatus, Event, ServiceOverview

COLUMNS = (("service", 12), ("status", 11), ("stages", 7), ("commit", 7), ("author", 8),
           ("age", 4), ("took", 6), ("staging", 7), ("prod", 7))
SORTS = ("pipeline", "status", "age")
_STATUS_RANK = {"failed": 0, "awaiting_approval": 1, "running": 2, "queued": 3}


class DashboardScreen(BaseScreen):
    BINDINGS = [
        Binding("slash", "filter", "filter", id="dashboard.filter"),
        Binding("s", "sort", "sort", id="dashboard.sort"),
        Binding("a", "approve", "approve", id="dashboard.approve"),
        Binding("p", "approvals", "approvals", show=False, id="dashboard.approvals"),
        Binding("l", "last_run", "last run", id="dashboard.last_run"),
        Binding("r", "rollback", "rollback", id="dashboard.rollback"),
        Binding("escape", "clear_filter", "clear", show=False, id="dashboard.clear_filter"),
    ]

    DEFAULT_CSS = """
    DashboardScreen #filter { display: none; }
    DashboardScreen #approvals { height: auto; max-height: 6; border: heavy $warning;
        border-title-color: $warning; border-title-style: bold; display: none; }
    DashboardScreen #services { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, ServiceOverview] = {}
        self.filter_text = ""
        self.sort_key = "pipeline"

    def compose(self) -> ComposeResult:
        yield TopBar("Seamless · pipelines")
        yield OptionList(id="approvals")
        yield Input(placeholder="filter services (enter to apply, esc to clear)", id="filter")
        yield VimTable(id="services")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(VimTable)
        table.cell_padding = 0
        for label, width in COLUMNS:
            table.add_column(label, width=width + 1, key=label)
        table.focus()
        self.refresh_data()

    def refresh_data(self) -> None:
        self.fetch("overview", self.client.overview)

    def show_overview(self, rows: list[ServiceOverview]) -> None:
        self.rows = {r.service.name: r for r in rows}
        self.render_rows()

    # -- rendering ----------------------------------------------------------------------------
    def _visible(self) -> list[ServiceOverview]:
        needle = self.filter_text.lower()
        rows = [r for r in self.rows.values() if not needle or needle in " ".join([
            r.pipeline, r.service.name, r.last_run.author or "" if r.last_run else "",
            r.last_run.status if r.last_run else ""]).lower()]
        if self.sort_key == "status":
            rows.sort(key=lambda r: (_STATUS_RANK.get(r.last_run.status if r.last_run else "", 9),
                                     r.service.name))
        elif self.sort_key == "age":
            rows.sort(key=lambda r: -(r.last_run.created_at.timestamp() if r.last_run else 0))
        else:
            rows.sort(key=lambda r: (r.pipeline, r.service.name))
        return rows

    def render_rows(self) -> None:
        table = self.query_one(VimTable)
        selected = table.selected_key()
        table.clear()
        now, pipeline = self.now(), None
        for row in self._visible():
            if self.sort_key == "pipeline" and row.pipeline != pipeline:
                pipeline = row.pipeline
                table.add_row(Text(f"▾ {pipeline}", style="bold"), key=f"pipeline:{pipeline}")
            run = row.last_run
            cells: list[object] = [Text(first_line(row.service.name, 13))]
            if run is None:
                cells += [Text("no runs", style="dim"), stage_cells(None), "", "", "", ""]
            else:
                cells += [status_text(run.status), stage_cells(run), short_sha(run.sha),
                          first_line(run.author, 8), age(run.created_at, now),
                          duration(span(run.started_at, run.finished_at, now))]
            cells += [_deployed(row.staging), _deployed(row.production)]
            table.add_row(*cells, key=row.service.name)
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        self._render_approvals()
        self.query_one(TopBar).set_crumb(
            f"Seamless · {len(self.rows)} services · sort: {self.sort_key}"
            + (f" · filter: {self.filter_text}" if self.filter_text else ""))

    def _render_approvals(self) -> None:
        panel = self.query_one("#approvals", OptionList)
        pending = [r for r in self.rows.values() if r.pending_approval
                   and r.pending_approval.status is ApprovalStatus.pending]
        panel.clear_options()
        for row in sorted(pending, key=lambda r: r.service.name):
            ap = row.pending_approval
            assert ap is not None
            panel.add_option(Option(Text.assemble(
                ("⏸ ", "bold"), (row.service.name, "bold"), f"  run #{_run_number(row)}  ",
                f"{short_sha(ap.production_sha)} → {short_sha(ap.candidate_sha)}"),
                id=str(ap.run_id)))
        panel.border_title = f"⏸ {len(pending)} awaiting approval — p, then enter to review"
        panel.display = bool(pending)

    # -- live updates -------------------------------------------------------------------------
    @on(AgentEvent)
    def _event(self, message: AgentEvent) -> None:
        if apply_event(self.rows, message.event):
            self.render_rows()
        elif message.event.type == "service":
            self.refresh_data()

    @on(Reconnected)
    def _reconnected(self) -> None:
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

    def action_last_run(self) -> None:
        row = self._selected()
        if row is not None and row.last_run is not None:
            self.seamless.open_run(row.last_run.id)

    def action_rollback(self) -> None:
        row = self._selected()
        if row is not None:
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


def _deployed(dep: object) -> Text:
    sha = getattr(dep, "sha", None)
    return Text(short_sha(sha), style="" if sha else "dim")


def _run_number(row: ServiceOverview) -> str:
    ap = row.pending_approval
    if row.last_run is not None and ap is not None and row.last_run.id == ap.run_id:
        return str(row.last_run.number)
    return str(ap.run_id) if ap else "?"


def apply_event(rows: dict[str, ServiceOverview], event: Event) -> bool:
    """Fold one live event into the dashboard rows; True when something shown changed."""
    if event.run is not None and event.run.service in rows:
        row = rows[event.run.service]
        if row.last_run is None or event.run.id >= row.last_run.id:
            stages = event.run.stages or (row.last_run.stages if row.last_run
                                          and row.last_run.id == event.run.id else [])
            row.last_run = event.run.model_copy(update={"stages": stages})
            return True
    if event.stage is not None:
        for row in rows.values():
            run = row.last_run
            if run is not None and run.id == event.stage.run_id:
                run.stages = [event.stage if s.name == event.stage.name else s
                              for s in run.stages]
                return True
    if event.approval is not None and event.approval.service in rows:
        row = rows[event.approval.service]
        pending = event.approval.status is ApprovalStatus.pending
        if pending or (row.pending_approval and row.pending_approval.run_id
                       == event.approval.run_id):
            row.pending_approval = event.approval if pending else None
            return True
    if event.deployment is not None and event.deployment.service in rows:
        dep = event.deployment
        if dep.status is DeploymentStatus.active and dep.environment in ("staging", "production"):
            setattr(rows[dep.service], dep.environment, dep)
            return True
    return False
