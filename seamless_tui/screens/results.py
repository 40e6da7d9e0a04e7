"""The test pane of a run (`t` in the run view): the stages' test counts, then the failing
tests first (quarantined failures, then flaky passes after them), each with its recent
history (✓✓✗✓✓); the highlighted one's message, trace and runs. `enter` opens the stage's
log where the test's output starts; `Q` quarantines it (deployer, with a reason), `U`
ends its quarantine."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from seamless_tui.fmt import short_sha
from seamless_tui.screens.base import BaseModal, BaseScreen
from seamless_tui.widgets.key_footer import KeyFooter
from seamless_tui.widgets.topbar import TopBar
from store.models import (
    Quarantine,
    RunTestSummary,
    StageTestSummary,
    TestCaseResult,
    TestHistory,
    test_key,
)

GLYPH_STYLES = {"✓": "green", "✗": "red", "~": "yellow", "-": "dim"}
OUTCOME_GLYPHS = {"passed": "✓", "failed": "✗", "error": "✗", "flaky": "~", "skipped": "-"}


def stage_counts(summary: StageTestSummary) -> str:
    """`12 failed / 1,204 passed` (+ flaky, quarantined when there are some)."""
    parts = [f"{summary.failed + summary.errors:,} failed", f"{summary.passed:,} passed"]
    parts += [f"{n:,} {label}" for label, n in (("flaky", summary.flaky),
                                                ("quarantined", summary.quarantined)) if n]
    return " / ".join(parts)


def history_text(glyphs: str) -> Text:
    return Text.assemble(*((g, GLYPH_STYLES.get(g, "")) for g in glyphs))


class ReasonModal(BaseModal):
    """Why a test is quarantined (kept in the audit trail): enter saves, esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="reason.cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(self.question, id="question")
            yield Input(placeholder="reason (at least 3 characters), enter to save",
                        id="reason")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if len(event.value.strip()) >= 3:
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class TestsScreen(BaseScreen):
    __test__ = False  # not a pytest class

    BINDINGS = [
        Binding("escape,t", "app.pop_screen", "back", id="tests.back"),
        Binding("enter", "open_log", "log of the test", id="tests.log"),
        Binding("Q", "quarantine", "quarantine", id="tests.quarantine"),
        Binding("U", "release", "end quarantine", id="tests.release"),
        Binding("j", "cursor(1)", "down", show=False, id="tests.down"),
        Binding("k", "cursor(-1)", "up", show=False, id="tests.up"),
    ]

    def __init__(self, run_id: int, open_log: Callable[[str, str], object]) -> None:
        super().__init__()
        self.run_id = run_id
        self.open_log = open_log  # (stage, test name) → the run view shows it in the log
        self.summary: RunTestSummary | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"Seamless › run {self.run_id} › tests")
        yield Static("loading the test results…", id="tests-summary")
        with Horizontal(id="tests-body"):
            yield OptionList(id="tests-list")
            with VerticalScroll(id="test-detail"):
                yield Static("", id="test-detail-text")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.reload()

    def reload(self) -> None:
        self.fetch(lambda: self.client.run_tests(self.run_id), self.show_summary)

    def show_summary(self, summary: RunTestSummary) -> None:
        self.summary = summary
        head = Text(f"{summary.service} {short_sha(summary.sha)}  ")
        for stage in summary.stages:
            head.append(f"{stage.stage}: ", "bold")
            head.append(stage_counts(stage), "red" if stage.failed + stage.errors else "green")
            if stage.attempts > 1:
                head.append(f" (retried: {stage.retry_s:.1f} s)", "dim")
            head.append("   ")
        if not summary.stages:
            head.append("no JUnit reports in this run (tests.reports in the service config)",
                        "dim")
        self.query_one("#tests-summary", Static).update(head)
        listing = self.query_one(OptionList)
        highlighted = listing.highlighted
        listing.clear_options()
        listing.add_options(Option(self._row(t), id=str(i))
                            for i, t in enumerate(summary.failures))
        if summary.failures:
            listing.highlighted = min(highlighted or 0, len(summary.failures) - 1)
        else:
            self.query_one("#test-detail-text", Static).update(
                "No failing, quarantined or flaky test." if summary.stages else "")

    @staticmethod
    def _row(test: TestCaseResult) -> Text:
        label, style = (("QUARANTINED", "yellow") if test.quarantined or test.quarantined_now
                        else
                        ("FLAKY", "yellow") if test.outcome.value == "flaky" else
                        (test.outcome.value.upper(), "red"))
        return Text.assemble((f"{label:<12}", style), history_text(test.history[-10:]
                                                                    .rjust(10)),
                             "  ", test_key(test.classname, test.name))

    def selected(self) -> TestCaseResult | None:
        listing = self.query_one(OptionList)
        if self.summary is None or listing.highlighted is None:
            return None
        return self.summary.failures[listing.highlighted]

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, _: OptionList.OptionHighlighted) -> None:
        test = self.selected()
        if test is None:
            return
        self._detail(test, None)
        test_id = test.test_id
        self.fetch(lambda: self.client.test_history(test_id), self._with_history)

    def _with_history(self, history: TestHistory) -> None:
        test = self.selected()
        if test is not None and test.test_id == history.test_id:
            self._detail(test, history)

    def _detail(self, test: TestCaseResult, history: TestHistory | None) -> None:
        text = Text(test_key(test.classname, test.name), "bold")
        took = f"  {test.duration_s:.3f} s" if test.duration_s is not None else ""
        text.append(f"\n{test.outcome.value}{took}  attempt {test.attempt}  flaky score "
                    f"{test.flaky_score:.2f}  history ")
        text.append_text(history_text(test.history))
        if history is not None and history.quarantine is not None:
            held = history.quarantine
            text.append(f"\nquarantined by {held.actor} until {held.expires_at:%Y-%m-%d}: "
                        f"{held.reason}", "yellow")
        if test.message:
            text.append(f"\n\n{test.message}", "red")
        if test.trace:
            text.append(f"\n\n{test.trace}")
        if history is not None and history.entries:
            text.append("\n\nruns (newest first)\n", "bold")
            for entry in history.entries[:20]:
                glyph = OUTCOME_GLYPHS.get(entry.outcome.value, "?")
                text.append(glyph, GLYPH_STYLES.get(glyph, ""))
                text.append(f" #{entry.run_number} {short_sha(entry.sha)} {entry.stage}"
                            f"{' (retry)' if entry.attempt > 1 else ''}\n")
        text.append("\nenter: its log · Q: quarantine · U: end quarantine", "dim")
        self.query_one("#test-detail-text", Static).update(text)

    # -- actions --------------------------------------------------------------------------
    def action_cursor(self, step: int) -> None:
        listing = self.query_one(OptionList)
        if step > 0:
            listing.action_cursor_down()
        else:
            listing.action_cursor_up()

    @on(OptionList.OptionSelected)
    def _selected(self, _: OptionList.OptionSelected) -> None:
        self.action_open_log()  # the list takes enter itself

    def action_open_log(self) -> None:
        test = self.selected()
        stage = self._stage_of(test)
        if test is None or stage is None:
            return
        self.app.pop_screen()
        self.open_log(stage, test.name)

    def _stage_of(self, test: TestCaseResult | None) -> str | None:
        if test is None or self.summary is None or not self.summary.stages:
            return None
        return test.stage or self.summary.stages[0].stage

    def action_quarantine(self) -> None:
        test = self.selected()
        if test is None or self.summary is None:
            return
        service, name = self.summary.service, test_key(test.classname, test.name)

        def save(reason: str | None) -> None:
            if reason:
                self.fetch(lambda: self.client.quarantine(service, name, reason),
                           self._quarantined)

        self.app.push_screen(ReasonModal(f"Quarantine {name}? Its failures will not fail "
                                         "the stage for 14 days. Why?"), save)

    def _quarantined(self, held: Quarantine) -> None:
        self.notify(f"{test_key(held.classname, held.name)} quarantined until "
                    f"{held.expires_at:%Y-%m-%d}")
        self.reload()

    def action_release(self) -> None:
        test = self.selected()
        if test is None or self.summary is None:
            return
        service, name = self.summary.service, test_key(test.classname, test.name)
        self.fetch(lambda: self.client.release_test(service, name),
                   lambda _: self._released(name))

    def _released(self, name: str) -> None:
        self.notify(f"{name}: quarantine ended")
        self.reload()
