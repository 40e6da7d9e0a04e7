"""The top of every screen: a header line about the agent (where it is, its version, runs
running and queued, the Docker engine's state, the connection), then where you are.

The header asks the agent (`/api/v1/info`) every few seconds while its screen is shown;
a failed ask only greys the line (the connection indicator says what is wrong)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from seamless_tui.fmt import APPROVAL_ICON
from seamless_tui.services import services
from seamless_tui.widgets.connection import ConnectionIndicator
from store.models import AgentInfo

INFO_EVERY_S = 5.0
_DOCKER_STYLE = {"up": "green", "down": "bold red", "not used": "dim"}


class TopBar(Vertical):
    def __init__(self, crumb: str | Text) -> None:
        super().__init__()
        self.crumb: str | Text = crumb
        self.info: AgentInfo | None = None
        self._info_shown = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="agent-line"):
            yield Static(self._agent_url(), id="agent-info")
            yield ConnectionIndicator()
        yield Static(self.crumb, id="crumb")

    def on_mount(self) -> None:
        self._ask()
        self.set_interval(INFO_EVERY_S, self._ask)

    def set_crumb(self, text: str | Text) -> None:
        # Screens set it on every event and every second's tick: only a change repaints it,
        # and never with a layout pass (one fixed line).
        if text != self.crumb:
            self.crumb = text
            self.query_one("#crumb", Static).update(text, layout=False)

    def _agent_url(self) -> str:
        return display_url(services(self).client.base_url)

    def _ask(self) -> None:
        if not self.screen.is_current:
            return  # a screen under another one: nobody sees its header
        client = services(self).client

        async def ask() -> None:
            try:
                info = await client.info()
            except Exception:  # noqa: BLE001 - the connection indicator tells the reason
                info = None
            self.show_info(info)

        self.run_worker(ask, group="agent-info", exclusive=True,  # type: ignore[arg-type]
                        exit_on_error=False)

    def show_info(self, info: AgentInfo | None) -> None:
        changed = info != self.info or not self._info_shown
        self.info, self._info_shown = info, True
        if changed:
            self.query_one("#agent-info", Static).update(agent_line(self._agent_url(), info),
                                                         layout=False)


def display_url(url: str) -> str:
    return url.removeprefix("http://")


def agent_line(url: str, info: AgentInfo | None) -> Text:
    if info is None:
        return Text(url, "dim")
    line = Text.assemble((url, "bold"), f" v{info.version} · ",
                         (f"{info.running} running", "yellow" if info.running else ""),
                         f" · {info.queued} queued · docker ",
                         (info.docker.state, _DOCKER_STYLE.get(info.docker.state, "")),
                         no_wrap=True, overflow="ellipsis")
    if info.docker.state == "down" and info.docker.detail:
        line.append(f" ({info.docker.detail})", "dim")
    if info.awaiting_approval:  # last: a narrow terminal cuts this first (the dashboard
        line.append(f" · {APPROVAL_ICON} {info.awaiting_approval} awaiting approval",
                    "magenta")  # lists approvals anyway)
    return line
