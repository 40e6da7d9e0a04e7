"""The Seamless TUI application: owns the client and the long-lived streams.

Streams are App-level workers (they outlive any screen) that post messages;
screens react in handlers. Worker failures are shown in one place.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from seamless_tui.client import AgentClient, ApiError
from seamless_tui.config import UserConfig
from seamless_tui.fmt import Clock, system_clock
from seamless_tui.keymap import apply_keymap, binding_ids
from seamless_tui.messages import AgentEvent, ConnectionChanged, LogLines, Reconnected
from seamless_tui.theming import STYLESHEET, load_themes
from seamless_tui.widgets.log_view import LogView


class SeamlessApp(App[None]):
    TITLE = "Seamless"
    CSS_PATH = str(STYLESHEET)
    BINDINGS = [
        Binding("question_mark", "help", "help", id="app.help"),
        Binding("colon", "jump", "jump", id="app.jump"),
        Binding("ctrl+t", "next_theme", "theme", show=False, id="app.theme"),
        Binding("q", "quit", "quit", id="app.quit"),
    ]
    connection_state: reactive[str] = reactive("connecting")

    def __init__(self, client: AgentClient, *, config: UserConfig | None = None,
                 clock: Clock = system_clock, max_log_lines: int = 10_000) -> None:
        super().__init__()
        self.client = client
        self.user_config = config or UserConfig()
        self.clock = clock
        self.max_log_lines = max_log_lines
        self.role: str | None = None
        self.service_names: list[str] = []
        self._was_connected = False

    def on_mount(self) -> None:
        from seamless_tui.screens import ALL_SCREENS
        from seamless_tui.screens.dashboard import DashboardScreen

        for theme in load_themes():
            self.register_theme(theme)
        if self.user_config.theme in self.available_themes:
            self.theme = self.user_config.theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        known = binding_ids([type(self), *ALL_SCREENS])
        unknown = apply_keymap(self, self.user_config.keymap, known)
        if unknown:
            self.notify(f"tui.toml: unknown binding ids {unknown}", severity="warning")
        self.push_screen(DashboardScreen())
        self.follow_events()
        self.load_me()
        # Textual's start-up objects live forever: keep full GC passes from rescanning them
        # (those passes were the 100 ms+ key stalls while a log floods in).
        self.call_after_refresh(gc.freeze)

    # -- streams (App-level workers) ---------------------------------------------------------
    def _on_state(self, state: str, detail: str) -> None:
        self.post_message(ConnectionChanged(state, detail))

    @work(exclusive=True, group="events", exit_on_error=False)
    async def follow_events(self) -> None:
        async for event in self.client.events(self._on_state):
            self.post_message(AgentEvent(event))

    @work(exclusive=True, group="logs", exit_on_error=False)
    async def start_log_stream(self, run_id: int, stage: str | None, after: str | None) -> None:
        async for lines in self.client.log_stream(run_id, stage=stage, after=after):
            self.post_message(LogLines(run_id, stage, lines))

    def stop_log_stream(self) -> None:
        self.workers.cancel_group(self, "logs")

    @work(group="me", exit_on_error=False)
    async def load_me(self) -> None:
        me = await self.client.me()
        self.role = me.get("role")

    @on(AgentEvent)
    def _fan_out(self, message: AgentEvent) -> None:
        for screen in self.screen_stack:
            screen.post_message(AgentEvent(message.event))

    @on(LogLines)
    def _log_lines(self, message: LogLines) -> None:
        for view in self.screen.query(LogView):
            if view.run_id == message.run_id and view.stage == message.stage:
                view.add_live(message.lines)

    @on(ConnectionChanged)
    def _connection(self, message: ConnectionChanged) -> None:
        self.connection_state = message.state
        if message.state == "connected":
            # Every connect after the first may have missed events: views refetch.
            if self._was_connected:
                for screen in self.screen_stack:
                    screen.post_message(Reconnected())
            self._was_connected = True

    @on(Worker.StateChanged)
    def _app_worker(self, event: Worker.StateChanged) -> None:
        self.worker_failed(event)

    def worker_failed(self, event: Worker.StateChanged) -> None:
        """The one place worker errors become a message the user can read (screens and
        widgets forward theirs here: the message does not bubble)."""
        if event.state is not WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, ApiError):
            if error.status in (401, 403) and event.worker.group == "events":
                self.connection_state = "denied"
            self.notify(error.message, severity="error", title="Agent said no"
                        if error.status in (401, 403) else "Request failed", timeout=8)
        else:
            self.notify(f"{type(error).__name__}: {error}", severity="error", timeout=8)

    # -- navigation ---------------------------------------------------------------------------
    def open_service(self, name: str) -> None:
        from seamless_tui.screens.service import ServiceScreen

        self.push_screen(ServiceScreen(name))

    def open_run(self, run_id: int) -> None:
        from seamless_tui.screens.run import RunScreen

        self.push_screen(RunScreen(run_id, max_log_lines=self.max_log_lines))

    def open_approval(self, run_id: int) -> None:
        from seamless_tui.screens.approval import ApprovalModal

        self.push_screen(ApprovalModal(run_id))

    def open_rollback(self, service: str) -> None:
        from seamless_tui.screens.rollback import RollbackScreen

        self.push_screen(RollbackScreen(service))

    def action_go_back(self) -> None:
        from seamless_tui.screens.run import RunScreen

        if len(self.screen_stack) > 2:
            if isinstance(self.screen, RunScreen):
                self.stop_log_stream()
            self.pop_screen()

    def action_help(self) -> None:
        from seamless_tui.screens.help import HelpScreen

        if type(self.screen).__name__ != "HelpScreen":
            self.push_screen(HelpScreen(self.screen))

    def action_jump(self) -> None:
        from seamless_tui.screens.dashboard import DashboardScreen
        from seamless_tui.screens.jump import JumpModal

        names = list(self.screen_stack[1].rows) if isinstance(
            self.screen_stack[1], DashboardScreen) else []
        self.push_screen(JumpModal(names), lambda n: self.open_service(n) if n else None)

    def action_next_theme(self) -> None:
        names = [t.name for t in load_themes()]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]

    def _remember_theme(self, theme: Any) -> None:
        self.user_config.theme = theme.name
        self.user_config.save()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette lists every action of the current screen, the app, and each theme."""
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for node in (screen.focused, screen, self):
            for _key, binding in [(b.key, b) for b in getattr(node, "BINDINGS", [])
                                  if isinstance(b, Binding)]:
                if binding.id in seen or not binding.description:
                    continue
                seen.add(binding.id or binding.action)
                target = node if node is not None else screen
                yield SystemCommand(binding.description.capitalize(),
                                    f"key: {self.get_key_display(binding)}",
                                    partial(self._run_action, target, binding.action))
        for theme in load_themes():
            yield SystemCommand(f"Theme: {theme.name}", "switch and remember the theme",
                                partial(setattr, self, "theme", theme.name))

    async def _run_action(self, node: Any, action: str) -> None:
        await self.run_action(action, node)
