"""The command palette: each action once, under a name that says what it does.

Only bindings with a title here are listed (moving the cursor is not a command); the
focused widget's, its containers', the screen's and the app's, nearest first. Textual's
own Quit / Theme / Keys entries give way to ours (no two "Quit")."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textual.app import SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette, SearchIcon

TITLES = {
    "app.help": "Help: every key of this screen",
    "app.jump": "Jump to a service or run (:payments, :payments#12, :#12)",
    "app.quit": "Quit",
    "app.theme": "Next theme",
    "dashboard.filter": "Filter services (words, status:failed, branch:main)",
    "dashboard.sort": "Sort services (pipeline, status, age)",
    "dashboard.approve": "Review the pending approval",
    "dashboard.approvals": "Go to the pending approvals",
    "dashboard.last_run": "Open the last run of the service",
    "dashboard.rollback": "Roll back the service",
    "dashboard.trigger": "Start a run of the branch head",
    "run.cancel": "Cancel this run",
    "run.rerun": "Rerun the whole run",
    "run.rerun_from": "Rerun from the selected stage",
    "run.approve": "Review the approval of this run",
    "run.link": "Commit link (shown and copied)",
    "run.page": "Run page for browsers: signed link (shown and copied)",
    "run.tests": "Test results: failures first, history, quarantine",
    "tests.log": "Open the test's output in the stage log",
    "tests.quarantine": "Quarantine the test (deployer, with a reason)",
    "tests.release": "End the test's quarantine",
    "run.switch_pane": "Switch between the stages and the log",
    "service.rollback": "Roll back the service",
    "service.unpin": "Unpin the environments a rollback pinned",
    "service.trigger": "Start a run of the branch head",
    "service.clear_cache": "Clear the service's dependency caches",
    "service.link": "Commit link of the selected run (shown and copied)",
    "service.filter": "Filter runs (status:failed, branch:main)",
    "service.edit": "Edit the service configuration (admin)",
    "service.tab_runs": "Show the runs",
    "service.tab_deploys": "Show the deployments",
    "service.tab_dora": "Show the DORA figures",
    "service.tab_config": "Show the configuration",
    "rollback.environment": "Roll back in the other environment",
    "rollback.unpin": "Unpin this environment",
    "log.search": "Log: search the whole stage log",
    "log.next_match": "Log: next match",
    "log.prev_match": "Log: previous match",
    "log.first_error": "Log: jump to the first error",
    "log.follow": "Log: follow the live end",
    "log.top": "Log: go to the first line",
    "log.bottom": "Log: go to the end",
    "log.wrap": "Log: wrap long lines",
    "log.timestamps": "Log: show timestamps",
    "log.numbers": "Log: show line numbers",
    "log.save": "Log: save the whole stage log to a file",
    "log.copy": "Log: copy the line at the cursor",
}
TEXTUAL_DUPLICATES = {"Quit", "Theme", "Keys"}


def palette_commands(app: Any, screen: Any, defaults: Iterable[SystemCommand],
                     run: Callable[[Any, str], Any]) -> Iterable[SystemCommand]:
    """`run(node, action)` performs a binding's action on the node that declares it."""
    yield from (c for c in defaults if c.title not in TEXTUAL_DUPLICATES)
    nodes = list(screen.focused.ancestors_with_self) if screen.focused is not None else []
    nodes += [screen, app]
    seen: set[str] = set()
    for node in nodes:
        for binding in getattr(node, "BINDINGS", []):
            if not isinstance(binding, Binding) or binding.id not in TITLES:
                continue
            if binding.id in seen:
                continue
            seen.add(binding.id)
            yield SystemCommand(TITLES[binding.id], f"key: {app.get_key_display(binding)}",
                                lambda node=node, action=binding.action: run(node, action))


async def open_palette(app: Any) -> None:
    """Textual's palette, with a plain search mark: its default magnifier is an emoji that
    common terminal fonts draw as a missing-glyph box."""
    if not app.use_command_palette or CommandPalette.is_open(app):
        return
    palette = CommandPalette(id="--command-palette")
    await app.push_screen(palette)
    for icon in palette.query(SearchIcon):
        icon.icon = "/"
