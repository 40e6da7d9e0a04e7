"""The footer shows the focused widget's keys, and focus going back and forth reuses the
keys it mounted (Textual's Footer rebuilt them on each focus change: the Tab cost in the
tmux journey)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from seamless_tui.widgets.key_footer import KeyFooter


class Pane(Static, can_focus=True):
    pass


class Stages(Pane):
    BINDINGS = [Binding("R", "rerun", "rerun"), Binding("F", "rerun_from", "rerun from")]


class Log(Pane):
    BINDINGS = [Binding("slash", "search", "search"), Binding("s", "save", "save log")]


class TwoPanes(App[None]):
    BINDINGS = [Binding("q", "quit", "quit")]

    def compose(self) -> ComposeResult:
        yield Stages("stages", id="stages")
        yield Log("log", id="log")
        yield KeyFooter()


def shown(app: TwoPanes) -> list[str]:
    return [key.description for key in app.query(FooterKey) if key.parent is not None
            and key.parent.display and "-command-palette" not in key.classes]


async def test_the_footer_follows_focus_and_reuses_its_keys() -> None:
    app = TwoPanes()
    async with app.run_test(size=(100, 10)) as pilot:
        app.query_one("#stages").focus()
        await pilot.pause()
        assert shown(app) == ["rerun", "rerun from", "quit"]
        await pilot.press("tab")
        await pilot.pause()
        assert shown(app) == ["search", "save log", "quit"]
        mounted = set(app.query(FooterKey))
        for _ in range(3):
            await pilot.press("tab")
            await pilot.pause()
            assert shown(app) == ["rerun", "rerun from", "quit"]
            await pilot.press("tab")
            await pilot.pause()
            assert shown(app) == ["search", "save log", "quit"]
        assert set(app.query(FooterKey)) == mounted  # the same widgets: nothing rebuilt
