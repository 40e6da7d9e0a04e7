"""The approval prompt: candidate vs production, the commits between, staging health.
Focus starts on "Leave pending"; approving takes a deliberate `a`."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from seamless_tui.client import ApiError
from seamless_tui.fmt import first_line, plural, run_label, short_sha
from seamless_tui.screens.base import BaseModal
from store.models import Approval, ApprovalStatus, RunInfo


class ApprovalModal(BaseModal):
    BINDINGS = [
        Binding("a", "decide(True)", "approve", id="approval.approve"),
        Binding("x", "decide(False)", "reject", id="approval.reject"),
        Binding("escape", "leave", "leave pending", id="approval.leave"),
        Binding("slash", "comment", "comment", id="approval.comment"),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.approval: Approval | None = None
        self.fetch_early(lambda: self.client.approval(run_id), self.show_approval)
        self.fetch_early(lambda: self.client.run(run_id), self.show_run)

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static("loading approval…", id="summary")
            with VerticalScroll(id="commits"):
                yield Static("", id="commit-list")
            yield Input(placeholder="optional comment (/ to type, tab away to decide)",
                        id="comment")
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Leave pending (esc)", id="leave", variant="primary")
                yield Button("Reject (x)", id="reject", variant="error")
                yield Button("Approve (a)", id="approve", variant="success")

    def on_mount(self) -> None:
        self.query_one("#box").border_title = "Approve production deploy"
        self.query_one("#leave", Button).focus()
        self.fetch(lambda: self.client.approval(self.run_id), self.show_approval)
        self.fetch(lambda: self.client.run(self.run_id), self.show_run)

    def show_run(self, run: RunInfo) -> None:
        self.query_one("#box").border_title = (
            f"Approve production deploy · {run_label(run.number, run.service)}")

    def show_approval(self, approval: Approval) -> None:
        self.approval = approval
        summary = Text.assemble(
            ("service      ", "dim"), (approval.service, "bold"), "\n",
            ("production   ", "dim"), short_sha(approval.production_sha), "\n",
            ("candidate    ", "dim"), (short_sha(approval.candidate_sha), "bold"), "\n",
            ("staging      ", "dim"), _health(approval.staging_health), "\n",
            ("status       ", "dim"), approval.status.value,
            f"  ({plural(len(approval.commits), 'commit')})")
        self.query_one("#summary", Static).update(summary)
        commits = Text()
        for c in approval.commits:
            commits.append(f"{short_sha(c.sha)} ", "bold")
            commits.append(f"{first_line(c.message, 46)} ")
            commits.append(f"{c.author or ''}\n", "dim")
        self.query_one("#commit-list", Static).update(commits or Text("(no commits listed)"))

    def action_comment(self) -> None:
        self.query_one("#comment", Input).focus()

    def action_leave(self) -> None:
        if self.query_one("#comment", Input).has_focus:
            self.query_one("#leave", Button).focus()
            return
        self.dismiss(None)

    def action_decide(self, approve: bool) -> None:
        comment = self.query_one("#comment", Input).value.strip() or None
        self.query_one("#error", Static).update("approving…" if approve else "rejecting…")

        async def decide() -> Approval | ApiError:
            try:
                return await self.client.decide(self.run_id, approve, comment)
            except ApiError as exc:  # shown in the dialog, not as a traceback
                return exc

        self.fetch(decide, self.show_decision)

    def show_decision(self, result: Approval | ApiError) -> None:
        if isinstance(result, ApiError):
            self.query_one("#error", Static).update(Text(f"✗ {result.message}", "bold"))
            self.notify(result.message, severity="error", title="Not allowed"
                        if result.status == 403 else "Failed")
            return
        verb = "approved" if result.status is ApprovalStatus.approved else result.status.value
        self.notify(f"{result.service}: production deploy {verb}")
        self.dismiss(result)

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        if event.button.id == "leave":
            self.dismiss(None)
        else:
            self.action_decide(event.button.id == "approve")


# The agent's verdict is `<deployment status>: <detail>` (e.g. `active: GET /health → 200`);
# older records hold a bare word.
_GOOD = {"active", "healthy", "ok", "passing"}
_BAD = {"failed", "unhealthy", "rolled_back"}


def _health(health: str | None) -> Text:
    """The agent's staging verdict as it is: live and healthy, failed, or still deploying."""
    if not health:
        return Text("unknown (no staging deploy for this run)", "dim")
    verdict, _, detail = health.partition(":")
    word = verdict.strip().lower()
    detail = detail.strip()
    if word in _GOOD:
        label, style = "✓ healthy", "green"
    elif word in _BAD:
        label, style = f"✗ {word.replace('_', ' ')}", "bold red"
    else:
        label, style = f"● {word.replace('_', ' ')}", "yellow"
    return Text.assemble((label, style), (f"  {detail}" if detail else "", "dim"))
