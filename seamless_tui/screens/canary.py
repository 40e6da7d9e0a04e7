"""Canary of one service environment, live: the front's weights, both colours' figures per
measured window with the verdict and its rule; `p` promotes now, `x` aborts (confirmed)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static, Tab, Tabs

from seamless_tui.client import ApiError
from seamless_tui.fmt import short_sha
from seamless_tui.screens.base import BaseScreen
from seamless_tui.screens.confirm import ConfirmModal
from seamless_tui.widgets.key_footer import KeyFooter
from seamless_tui.widgets.tables import Col, VimTable
from seamless_tui.widgets.topbar import TopBar
from store.models import ENVIRONMENTS, CanaryStatus, Deployment, Event

COLUMNS = [Col("step", "step"), Col("weight", "weight"), Col("role", "role"),
           Col("colour", "colour"), Col("req", "req"), Col("err", "err"), Col("p50", "p50"),
           Col("p95", "p95"), Col("verdict", "verdict"),
           Col("rule", "rule", flex=True, min_width=12)]
VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "inconclusive": "bold yellow"}
REFRESH_S = 1.0


class CanaryScreen(BaseScreen):
    BINDINGS = [
        Binding("escape", "app.go_back", "back", id="canary.back"),
        Binding("e", "next_env", "environment", id="canary.environment"),
        Binding("p", "promote", "promote now", id="canary.promote"),
        Binding("x", "abort", "abort", id="canary.abort"),
    ]

    def __init__(self, service: str, environment: str = "production") -> None:
        super().__init__()
        self.service_name, self.environment = service, environment
        self.status: CanaryStatus | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"Seamless › {self.service_name} › canary")
        yield Tabs(*[Tab(env, id=env) for env in ENVIRONMENTS], active=self.environment)
        yield Static("loading…", id="summary")
        yield VimTable(id="windows")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(VimTable).focus()
        self.load()
        self.set_interval(REFRESH_S, self._tick)

    def _tick(self) -> None:
        if self.status is not None and self.status.running:
            self.load()

    def load(self) -> None:
        name, env = self.service_name, self.environment
        self.fetch(lambda: self.client.canary(name, env), self.show_status)

    def reload(self) -> None:
        self.load()

    def agent_event(self, event: Event) -> None:
        dep = event.deployment
        if dep is not None and dep.service == self.service_name and (
                dep.environment == self.environment):
            self.load()

    def show_status(self, status: CanaryStatus) -> None:
        self.status = status
        self.query_one("#summary", Static).update(summary(status))
        rows = []
        for i, m in enumerate(status.measurements):
            rows.append((str(i), [
                str(m.step), f"{m.weight}%", m.role, m.colour, str(m.requests), str(m.errors),
                _ms(m.p50_ms), _ms(m.p95_ms),
                Text(m.verdict, VERDICT_STYLE.get(m.verdict, "")), m.rule]))
        self.query_one(VimTable).fill(COLUMNS, rows)

    @on(Tabs.TabActivated)
    def _env(self, event: Tabs.TabActivated) -> None:
        if event.tab.id and event.tab.id != self.environment:
            self.environment = event.tab.id
            self.load()

    def action_next_env(self) -> None:
        self.query_one(Tabs).action_next_tab()

    def action_promote(self) -> None:
        self._steer("promote", "Promote")

    def action_abort(self) -> None:
        self._steer("abort", "Abort")

    def _steer(self, action: str, label: str) -> None:
        if self.status is None or not self.status.running:
            self.notify(f"no canary is running in {self.environment}", severity="warning")
            return
        what = ("give the canary all traffic now" if action == "promote"
                else "send every request back to stable and fail the deploy")
        question = Text.assemble(f"{label} the canary of ", (self.service_name, "bold"),
                                 " in ", (self.environment, "bold"), f"?\n{what}")
        self.app.push_screen(ConfirmModal(question, confirm=label),
                             lambda ok: self._send(action) if ok else None)

    def _send(self, action: str) -> None:
        name, env = self.service_name, self.environment

        async def send() -> Deployment | ApiError:
            try:
                return await self.client.steer_canary(name, env, action)
            except ApiError as exc:
                return exc

        self.fetch(send, self.sent)

    def sent(self, result: Deployment | ApiError) -> None:
        if isinstance(result, ApiError):
            self.notify(result.message, severity="error")
        else:
            self.notify(f"sent to the canary of {short_sha(result.sha)}")
        self.load()


def summary(status: CanaryStatus) -> Text:
    dep = status.deployment
    if dep is None:
        return Text(f"no deployments to {status.environment} yet")
    weights = "  ".join(f"{c} {w}%" for c, w in sorted(status.weights.items())) or "no front"
    head = Text.assemble(
        (short_sha(dep.sha), "bold"), f"  {dep.status.value}",
        ("  canary running: p promote, x abort" if status.running else "", "bold yellow"),
        f"\nfront weights: {weights}")
    if dep.error:
        head.append(f"\n{dep.error}", "red")
    return head


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
