"""The Seamless TUI application: owns the client and the agent's event stream.

The event stream is an App-level worker; each event is published on the `agent_events`
Signal, which the shown screen subscribes to. A stage log's stream belongs to its log
view. Worker failures are shown in one place. Screens reach the App only through the
`Services` protocol (seamless_tui/services.py): this module imports them, never back.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from seamless_tui.client import AgentClient, ApiError
from seamless_tui.config import UserConfig
from seamless_tui.fmt import APPROVAL_ICON, Clock, run_label, system_clock
from seamless_tui.keymap import apply_keymap, binding_ids
from seamless_tui.messages import ConnectionChanged
from seamless_tui.palette import open_palette, palette_commands
from seamless_tui.screens import ALL_SCREENS
from seamless_tui.screens.approval import ApprovalModal
from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.screens.help import HelpScreen
from seamless_tui.screens.jump import open_jump
from seamless_tui.screens.rollback import RollbackScreen
from seamless_tui.screens.run import RunScreen
from seamless_tui.screens.service import ServiceScreen
from seamless_tui.services import Services
from seamless_tui.strip_cycles import install as no_self_caching_strips
from seamless_tui.theming import STYLESHEET, load_themes
from seamless_tui.typeahead import TICK_S, KeyHandled, TypeAhead
from store.models import ApprovalStatus, Event, RunInfo

PACKAGE_DIR = Path(__file__).resolve().parent
ERROR_TOAST_S = 8.0
# Allocations between young GC passes (Python's default: 700). While a log floods in, objects
# that live a second (rendered rows, lines in flight) outlived 2 young passes, reached the
# oldest generation and set off a full pass every ~2 s, nearly each one inside a key's answer
# (tmux journey at 10,000 lines/s, load 7-14: 8-9 full passes of 16-269 ms per journey; with
# 10,000: 1 pass, ~50 ms, and half the total GC time).
YOUNG_GC_THRESHOLD = 10_000


class SeamlessApp(App[None]):
    TITLE = "Seamless"
    # Shared layout, then the screens' and widgets' own rules (package data: see pyproject).
    CSS_PATH = [str(STYLESHEET), str(PACKAGE_DIR / "screens" / "screens.tcss"),
                str(PACKAGE_DIR / "widgets" / "widgets.tcss")]
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
        self.agent_events: Signal[Event] = Signal(self, "agent-events")
        self.reconnected: Signal[None] = Signal(self, "reconnected")
        self._announced: set[int] = set()  # approvals already rung for
        self._was_connected = False
        self._shown_errors: dict[str, float] = {}  # message -> until when its toast shows
        self._typeahead = TypeAhead()
        self.exit_at_once = False  # the program's `q` ends the process (action_quit)
        self._gc_thresholds = gc.get_threshold()

    def on_mount(self) -> None:
        for theme in load_themes():
            self.register_theme(theme)
        if self.user_config.theme in self.available_themes:
            self.theme = self.user_config.theme
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        known = binding_ids([type(self), *ALL_SCREENS])
        unknown = apply_keymap(self, self.user_config.keymap, known)
        if unknown:
            self.notify(f"tui.toml: unknown binding ids {unknown}", severity="warning")
        self.agent_events.subscribe(self, self._announce_approval)
        self.push_screen(DashboardScreen())
        self.follow_events()
        self.load_me()
        # Textual's start-up objects live forever: keep full GC passes from rescanning them
        # (those passes were the 100 ms+ key stalls while a log floods in).
        self.call_after_refresh(gc.freeze)
        no_self_caching_strips()  # rendered rows then die young (strip_cycles.py)
        self._gc_thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_GC_THRESHOLD, *self._gc_thresholds[1:])

    def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_thresholds)

    # -- type-ahead: one key at a time, each to a screen ready for it ----------------------
    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded and self._screen_stack:
            typeahead = self._typeahead
            if typeahead.held or typeahead.waiting(self.screen):
                typeahead.held.append(event)
                if len(typeahead.held) == 1:
                    self.set_timer(TICK_S, self._hand_over_keys)
                return
            await self._send_key(event)
            return
        await super().on_event(event)

    async def _send_key(self, key: events.Key) -> None:
        target = self.focused or self.screen  # where Textual forwards it
        await super().on_event(key)
        marker = self._typeahead.sent(target)
        if not target.post_message(marker):  # follows the key up to the App
            self._typeahead.handled(marker)  # the target is closing: no marker will come

    @on(KeyHandled)
    async def _key_handled(self, marker: KeyHandled) -> None:
        marker.stop()
        typeahead = self._typeahead
        typeahead.handled(marker)
        # The next held key goes at once: a word typed or pasted in one go was handed over
        # a 10 ms tick per key. (The tick still covers waits no marker ends: a screen
        # getting ready, a dialog on its way.)
        if typeahead.held and not typeahead.waiting(self.screen):
            await self._send_key(typeahead.held.pop(0))

    async def _hand_over_keys(self) -> None:
        typeahead = self._typeahead
        if typeahead.held and not typeahead.waiting(self.screen):
            await self._send_key(typeahead.held.pop(0))
        if typeahead.held:
            self.set_timer(TICK_S, self._hand_over_keys)

    def hold_keys(self) -> None:
        """An action will open a dialog once a fetch answers: keys typed meanwhile are for
        the dialog (bounded; a warning or an error lets them go)."""
        self._typeahead.hold(self.screen)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        if severity != "information":  # a refusal or a failure: no dialog is coming
            self._typeahead.release()
        super().notify(message, title=title, severity=severity, timeout=timeout,
                       markup=markup)

    # -- the event stream (an App-level worker) ----------------------------------------------
    def _on_state(self, state: str, detail: str) -> None:
        self.post_message(ConnectionChanged(state, detail))

    @work(exclusive=True, group="events", exit_on_error=False)
    async def follow_events(self) -> None:
        # The worker runs on the App's loop: publishing from here is publishing from the App.
        async for event in self.client.events(self._on_state):
            self.agent_events.publish(event)

    @work(group="me", exit_on_error=False)
    async def load_me(self) -> None:
        me = await self.client.me()
        self.role = me.get("role")

    def known_approvals(self, ids: Iterable[int]) -> None:
        """Approvals already pending when first seen: no bell for them."""
        self._announced.update(ids)

    def _announce_approval(self, event: Event) -> None:
        """A run that starts waiting for approval rings the terminal bell and says so on
        whatever screen is up."""
        ap = event.approval
        if ap is None or ap.status is not ApprovalStatus.pending or ap.id in self._announced:
            return  # not waiting, or already known: no second bell
        self._announced.add(ap.id)
        number = event.run.number if event.run is not None and event.run.id == ap.run_id \
            else None
        self.bell()
        self.notify(f"{APPROVAL_ICON} {ap.service} {run_label(number) if number else ''} is "
                    "waiting for approval: a (or p, enter) on the dashboard to review",
                    title="Approval waiting", severity="warning", timeout=20)

    @on(ConnectionChanged)
    def _connection(self, message: ConnectionChanged) -> None:
        self.connection_state = message.state
        if message.state == "connected":
            # Every connect after the first may have missed events: views refetch.
            if self._was_connected:
                self.reconnected.publish(None)
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
            self._error_once(error.message, "Agent said no" if error.status in (401, 403)
                             else "Request failed")
        else:
            self._error_once(f"{type(error).__name__}: {error}", "Error")

    def _error_once(self, message: str, title: str) -> None:
        """Several fetches failing for one reason (agent down, token refused) give one toast
        while it is still up, not one each."""
        now = time.monotonic()
        if self._shown_errors.get(message, 0.0) > now:
            return
        self._shown_errors = {m: t for m, t in self._shown_errors.items() if t > now}
        self._shown_errors[message] = now + ERROR_TOAST_S
        self.notify(message, severity="error", title=title, timeout=ERROR_TOAST_S)

    # -- navigation ---------------------------------------------------------------------------
    def open_service(self, name: str) -> None:
        self.push_screen(ServiceScreen(name))

    def open_run(self, run_id: int, known: RunInfo | None = None) -> None:
        self.push_screen(RunScreen(run_id, known=known, max_log_lines=self.max_log_lines))

    def open_approval(self, run_id: int) -> None:
        self.push_screen(ApprovalModal(run_id))

    def open_rollback(self, service: str) -> None:
        self.push_screen(RollbackScreen(service))

    def action_go_back(self) -> None:
        # A run's log stream ends with its view: popping the screen unmounts it.
        if len(self.screen_stack) > 2:
            self.pop_screen()

    async def action_quit(self) -> None:
        """`q`. The program (cli.main sets `exit_at_once`) ends right here: everything is
        saved as it changes (theme, agent, token), so once the terminal is restored
        nothing is left to do, and Textual's own shutdown — unmounting every widget,
        closing every stream — took ~0.5 s (seconds on a busy host) before the shell
        prompt came back. In a test (same process) the App exits as usual."""
        driver = self._driver
        if not self.exit_at_once or driver is None:
            await super().action_quit()
            return
        # Not waiting for the input thread: it wakes every 0.1 s and reads once more before it
        # ends (~0.2 s of the quit); the process ends below, so nothing of it is needed.
        if hasattr(driver, "_key_thread"):
            driver._key_thread = None
        driver.stop_application_mode()  # the terminal as it was: screen, modes, echo
        driver.close()  # the writer thread writes what is queued before it stops
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_jump(self) -> None:
        open_jump(self)

    def action_next_theme(self) -> None:
        names = [t.name for t in load_themes()]
        current = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(current + 1) % len(names)]

    def _remember_theme(self, theme: Any) -> None:
        self.user_config.theme = theme.name
        self.user_config.save()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Each action of the focused widget, the screen and the app once, then each theme."""
        yield from palette_commands(self, screen, super().get_system_commands(screen),
                                    self._run_action)
        for theme in load_themes():
            yield SystemCommand(f"Theme: {theme.name}", "switch and remember the theme",
                                partial(setattr, self, "theme", theme.name))

    def action_command_palette(self) -> None:
        self.run_worker(open_palette(self), group="palette", exit_on_error=False)

    async def _run_action(self, node: Any, action: str) -> None:
        await self.run_action(action, node)


def _provides_services(app: SeamlessApp) -> Services:
    return app  # mypy checks here that the App keeps every promise screens rely on
