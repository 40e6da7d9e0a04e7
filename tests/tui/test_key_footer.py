"""The footer shows the focused widget's keys, and focus going back and forth reuses the
keys it mounted (Textual's Footer rebuilt them on each focus change: the Tab cost in the
tmux journey). A click on a key presses it."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from seamless_tui.widgets.key_footer import KeyFooter, KeySet


class Pane(Static, can_focus=True):
    pass


class Stages(Pane):
    BINDINGS = [Binding("R", "rerun", "rerun"), Binding("F", "rerun_from", "rerun from")]


class Log(Pane):
    BINDINGS = [Binding("slash", "search", "search"), Binding("s", "save", "save log")]
    saved = 0

    def action_save(self) -> None:
        self.saved += 1


class TwoPanes(App[None]):
    BINDINGS = [Binding("q", "quit", "quit")]

    def compose(self) -> ComposeResult:
        yield Stages("stages", id="stages")
        yield Log("log", id="log")
        yield KeyFooter()


def shown(app: TwoPanes) -> list[str]:
    return [spec[2] for keys in app.query(KeySet) if keys.display for spec in keys.keys]


async def test_the_footer_follows_focus_and_reuses_its_keys() -> None:
    app = TwoPanes()
    async with app.run_test(size=(100, 10)) as pilot:
        app.query_one("#stages").focus()
        await pilot.pause()
        assert shown(app) == ["rerun", "rerun from", "quit"]
        await pilot.press("tab")
        await pilot.pause()
        assert shown(app) == ["search", "save log", "quit"]
        mounted = set(app.query(KeySet))
        for _ in range(3):
            await pilot.press("tab")
            await pilot.pause()
            assert shown(app) == ["rerun", "rerun from", "quit"]
            await pilot.press("tab")
            await pilot.pause()
            assert shown(app) == ["search", "save log", "quit"]
        assert set(app.query(KeySet)) == mounted  # the same widgets: nothing rebuilt


async def test_a_click_on_a_key_presses_it() -> None:
    app = TwoPanes()
    async with app.run_test(size=(100, 10)) as pilot:
        app.query_one("#log").focus()
        await pilot.pause()
        keys = next(k for k in app.query(KeySet) if k.display)
        line = keys.render().plain
        assert " s save log " in line
        await pilot.click(keys, offset=(line.index("save log"), 0))
        await pilot.pause()
        assert app.query_one("#log", Log).saved == 1
