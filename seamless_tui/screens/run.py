"""Run view: the stages with live status and running timers, and the selected stage's log."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from seamless_tui.fmt import (
    REUSED_ICON,
    STAGE_ICONS,
    duration,
    run_label,
    run_status,
    short_sha,
    span,
)
from seamless_tui.links import run_link
from seamless_tui.screens.base import BaseScreen
from seamless_tui.screens.results import TestsScreen, stage_counts
from seamless_tui.widgets.key_footer import KeyFooter
from seamless_tui.widgets.log_pane import LogPane
from seamless_tui.widgets.log_view import LogView
from seamless_tui.widgets.stage_cells import current_stage
from seamless_tui.widgets.topbar import TopBar
from store.models import (
    STAGE_INTEGRATION_TEST,
    STAGE_UNIT_TEST,
    ChangeDecision,
    Event,
    RunInfo,
    RunPageLink,
    RunStatus,
    RunTestSummary,
    Service,
    StageStatus,
)

TESTED_STAGES = (STAGE_UNIT_TEST, STAGE_INTEGRATION_TEST)


class StageList(OptionList):
    BINDINGS = [
        Binding("j", "cursor_down", "down", show=False, id="stages.down"),
        Binding("k", "cursor_up", "up", show=False, id="stages.up"),
    ]


class RunScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "app.go_back", "back", id="run.back"),
        Binding("c", "cancel_run", "cancel", id="run.cancel"),
        Binding("R", "rerun", "rerun", id="run.rerun"),
        Binding("F", "rerun_from", "rerun from stage", id="run.rerun_from"),
        Binding("a", "approve", "approve", id="run.approve"),
        Binding("o", "open_link", "commit link", id="run.link"),
        Binding("L", "page_link", "web page link", id="run.page"),
        Binding("t", "tests", "tests", id="run.tests"),
        Binding("tab", "switch_pane", "stages/log", show=False, id="run.switch_pane"),
    ]

    def __init__(self, run_id: int, *, known: RunInfo | None = None,
                 max_log_lines: int = 10_000) -> None:
        super().__init__()
        self.run_id = run_id
        # The run as the opener last saw it (a rerun's answer, a dashboard row): shown at
        # once, its log opened without waiting for the fetch, which then brings it up to date.
        self.known = known
        self.run: RunInfo | None = None
        self.stage: str | None = None
        self.chosen = False  # the user picked a stage: stop following the active one
        self.cancelling = False  # cancel asked; the agent is still stopping the stage
        self.max_log_lines = max_log_lines
        self.test_counts: dict[str, str] = {}  # stage → "12 failed / 1,204 passed"
        self.fetch_early(lambda: self.client.run(run_id), self.show_run)
        self.fetch_early(lambda: self.client.decisions(run=run_id), self.show_why)
        self.fetch_early(lambda: self.client.run_tests(run_id), self.show_tests)

    def compose(self) -> ComposeResult:
        # A known run's header is in the first paint (not "loading" first, then a repaint).
        known = self.known if self.known is not None and self.known.id == self.run_id else None
        yield TopBar(_header(known) if known is not None else "Seamless › loading the run…")
        with Horizontal(id="run-body"):
            yield StageList(id="stages")
            yield LogPane(max_lines=self.max_log_lines)
        yield KeyFooter()

    def on_mount(self) -> None:
        # Explicitly: auto-focus waits for the terminal to report focus, and then may pick
        # the log view that mounted meanwhile.
        self.query_one(StageList).focus()
        self.fetch(lambda: self.client.run(self.run_id), self.show_run)
        if self.known is not None and self.known.id == self.run_id:
            # Right after mounting, not inside it: the screen takes keys (Escape) meanwhile.
            self.call_later(self.show_run, self.known)
        self.fetch(lambda: self.client.decisions(run=self.run_id), self.show_why)
        self.fetch_tests()
        self.set_interval(1.0, self._tick)

    def fetch_tests(self) -> None:
        self.fetch(lambda: self.client.run_tests(self.run_id), self.show_tests)

    def show_tests(self, summary: RunTestSummary) -> None:
        self.test_counts = {s.stage: stage_counts(s) for s in summary.stages}
        self._render_stages()

    async def show_why(self, decisions: list[ChangeDecision]) -> None:
        """A service of a shared repository: the line that says why this run ran (the
        changed paths that matched, or a forced run)."""
        if decisions and not self.query("#run-why"):
            await self.mount(Static(Text(f"why: {decisions[0].reason}", "dim"), id="run-why"),
                             before=self.query_one(Footer))

    async def show_run(self, run: RunInfo) -> None:
        self.run = run = _never_back(self.run, run)
        self._render_header()
        self._render_stages()
        self._say_if_cancelled()
        wanted = self.stage if self.chosen else (current_stage(run) or _next_to_run(run)
                                                 or _last_started(run))
        if wanted != self.stage or self.query_one(LogPane).view is None:
            await self._open_log(wanted)

    def _render_header(self) -> None:
        assert self.run is not None
        self.query_one(TopBar).set_crumb(_header(self.run))

    def _render_stages(self) -> None:
        """Repaint the stage rows (timers tick every second). The cursor stays where the
        user put it: only opening a log moves it."""
        if self.run is None:
            return
        now = self.now()
        stages = self.query_one(StageList)
        rows = []
        for stage in self.run.stages:
            icon, style = STAGE_ICONS.get(stage.status, ("?", ""))
            took = span(stage.started_at, stage.finished_at, now)
            reused = stage.reused_from_run is not None  # a rerun copied this result
            counts = self.test_counts.get(stage.name)
            rows.append((stage.name, Text.assemble(
                (f"{icon} ", style), stage.name.ljust(21),
                (f"{REUSED_ICON} " if reused else "  ", "dim"),
                (duration(took) if took is not None else "", "dim"),
                # Under the stage's name: the stage list is narrow.
                (f"\n  {counts}" if counts else "",
                 "red" if counts and not counts.startswith("0 failed") else "dim"))))
        ids = [stages.get_option_at_index(i).id for i in range(stages.option_count)]
        if ids == [name for name, _ in rows]:
            for index, (_, line) in enumerate(rows):
                # Each tick re-renders the rows: only a changed one is replaced (and redrawn).
                if stages.get_option_at_index(index).prompt != line:
                    stages.replace_option_prompt_at_index(index, line)
        else:
            stages.clear_options()
            stages.add_options(Option(line, id=name) for name, line in rows)
        if stages.highlighted is None:
            self._highlight(self.stage)

    def _highlight(self, stage: str | None) -> None:
        names = [s.name for s in self.run.stages] if self.run is not None else []
        if stage in names:
            self.query_one(StageList).highlighted = names.index(stage)

    async def _open_log(self, stage: str | None) -> LogView:
        self.stage = stage
        self._highlight(stage)  # the cursor marks the stage shown
        return await self.query_one(LogPane).show(self.run_id, stage)

    def _tick(self) -> None:
        if self.run is not None and any(s.status is StageStatus.in_progress
                                        for s in self.run.stages):
            self._render_stages()

    @on(OptionList.OptionSelected, "#stages")
    async def _choose(self, event: OptionList.OptionSelected) -> None:
        self.chosen = True
        view = self.query_one(LogPane).view
        if event.option.id != self.stage or view is None:
            view = await self._open_log(event.option.id)
        view.focus()  # the view just mounted, never one being removed

    async def agent_event(self, ev: Event) -> None:
        run = self.run
        if run is None:
            return
        if ev.run is not None and ev.run.id == self.run_id:
            self.run = _never_back(run, ev.run.model_copy(
                update={"stages": ev.run.stages or run.stages}))
            self._render_header()
            self._render_stages()
            self._say_if_cancelled()
        elif ev.stage is not None and ev.stage.run_id == self.run_id:
            stage = ev.stage
            run.stages = [stage if s.name == stage.name and (stage.status.finished
                                                             or not s.status.finished)
                          else s for s in run.stages]
            self._render_stages()
            if ev.stage.status.finished and ev.stage.name in TESTED_STAGES:
                self.fetch_tests()
            if not self.chosen and ev.stage.status is StageStatus.in_progress:
                await self._open_log(ev.stage.name)

    def reload(self) -> None:
        self.fetch(lambda: self.client.run(self.run_id), self.show_run)
        self.fetch_tests()

    # -- actions ------------------------------------------------------------------------------
    def action_switch_pane(self) -> None:
        stages = self.query_one(StageList)
        pane = self.query_one(LogPane)
        if stages.has_focus and pane.view is not None:
            pane.focus_view()
        else:
            stages.focus()

    def action_cancel_run(self) -> None:
        if self.run is not None and self.run.status.finished:
            self.notify(f"Run #{self.run.number} already finished", severity="warning")
            return
        self.fetch(lambda: self.client.cancel(self.run_id), self.show_cancelled)

    async def show_cancelled(self, run: RunInfo) -> None:
        # The agent answers at once and stops the running stage after: say "cancelled"
        # only once the run has ended (a rerun before that is refused).
        if run.status.finished:
            self.notify(f"Run #{run.number} cancelled")
            await self.show_run(run)
            return
        self.cancelling = True
        self.notify(f"Cancelling run #{run.number}: its stage is being stopped…")
        # This answer may be older than the event that says the run ended: ask again.
        self.reload()

    def _say_if_cancelled(self) -> None:
        if self.cancelling and self.run is not None and self.run.status.finished:
            self.cancelling = False
            self.notify(f"Run #{self.run.number} {self.run.status.value}")

    def _still_cancelling(self) -> bool:
        if self.cancelling and self.run is not None and not self.run.status.finished:
            self.notify(f"Run #{self.run.number} is still being cancelled: rerun it once it "
                        "shows cancelled", severity="warning")
            return True
        return False

    def action_rerun(self) -> None:
        if self._still_cancelling():
            return
        self.fetch(lambda: self.client.rerun(self.run_id), self.show_rerun)

    def action_rerun_from(self) -> None:
        """From the highlighted stage; with none, from the stage shown (the failed one)."""
        stages = self.query_one(StageList)
        name = (stages.get_option_at_index(stages.highlighted).id
                if stages.highlighted is not None else self.stage)
        if name is None:
            self.notify("Pick a stage first (tab to the stage list, j/k), then F",
                        severity="warning")
            return
        if self._still_cancelling():
            return
        self.fetch(lambda: self.client.rerun(self.run_id, name), self.show_rerun)

    def show_rerun(self, run: RunInfo) -> None:
        # The new run's screen says which run started: no toast to say it again (a toast is
        # mounted anew on every screen shown while it lasts).
        self.app.switch_screen(RunScreen(run.id, known=run, max_log_lines=self.max_log_lines))

    def action_approve(self) -> None:
        if self.run is None or self.run.status is not RunStatus.awaiting_approval:
            self.notify("This run is not awaiting approval", severity="warning")
            return
        self.seamless.open_approval(self.run_id)


    def action_tests(self) -> None:
        self.app.push_screen(TestsScreen(self.run_id, self.show_test_in_log))

    def show_test_in_log(self, stage: str, test: str) -> None:
        """The stage's log, searched for the test: at the line where its output starts."""
        self.chosen = True
        self.call_later(self._show_test, stage, test)

    async def _show_test(self, stage: str, test: str) -> None:
        view = self.query_one(LogPane).view
        if stage != self.stage or view is None:
            view = await self._open_log(stage)
        if view.loaded_once:
            view.set_search(test)
        else:
            view.search_on_load = test
        view.focus()

    def action_open_link(self) -> None:
        if self.run is None:
            return
        service = self.run.service
        self.fetch(lambda: self.client.service(service), self.show_link)

    def show_link(self, service: Service) -> None:
        assert self.run is not None
        url = run_link(service.repo_url, self.run.sha, self.run.pr_number)
        if url is None:
            self.notify(f"{service.repo_url} has no web page to link to", severity="warning")
            return
        self.app.copy_to_clipboard(url)  # OSC 52: the terminal's clipboard, also over SSH
        self.notify(url, title="Commit link (copied to the clipboard)", timeout=15)

    def action_page_link(self) -> None:
        self.fetch(lambda: self.client.run_page_link(self.run_id), self.show_page_link)

    def show_page_link(self, link: RunPageLink) -> None:
        self.app.copy_to_clipboard(link.url)  # OSC 52: the terminal's clipboard, also over SSH
        self.notify(f"{link.url}\nanyone with it can read this run until "
                    f"{link.expires_at:%Y-%m-%d}", title="Run page (copied to the clipboard)",
                    timeout=20)


def _never_back(known: RunInfo | None, answer: RunInfo) -> RunInfo:
    """`answer` (a fetch or an event), except that a run or stage already seen finished
    stays finished: a GET answered before the run ended can arrive after the event that
    said it ended (the crumb then said `running` for good)."""
    if known is None or known.id != answer.id:
        return answer
    stages = {s.name: s for s in known.stages if s.status.finished}
    merged = [stages.get(s.name, s) for s in answer.stages]
    if known.status.finished and not answer.status.finished:
        return known.model_copy(update={"stages": merged})
    return answer.model_copy(update={"stages": merged})


def _next_to_run(run: RunInfo) -> str | None:
    """A queued or running run's next stage to run (a rerun's reused stages skipped)."""
    if run.status.finished:
        return None
    return next((s.name for s in run.stages
                 if s.status is StageStatus.idle and s.reused_from_run is None), None)


def _last_started(run: RunInfo) -> str | None:
    started = [s.name for s in run.stages if s.started_at is not None]
    return started[-1] if started else (run.stages[0].name if run.stages else None)


def _header(run: RunInfo) -> Text:
    head = Text.assemble(f"Seamless › {run.service} › {run_label(run.number)} ",
                         run_status(run), f"  {short_sha(run.sha)} ", (run.author or "", "dim"))
    if run.rerun_of is not None:
        head.append(f"  rerun from {run.rerun_from_stage or 'the start'}", "dim")
    return head
