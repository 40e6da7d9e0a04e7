"""A table filled again (every event, every second while a run's timer runs) updates only the
cells that changed; a rebuild (clear, re-measure every cell, lay the screen out again) only
when its columns or rows are not the same ones."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult

from seamless_tui.widgets.tables import Col, VimTable

COLS = [Col("name", "name"), Col("status", "status"), Col("took", "took")]


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield VimTable(id="t")


def rows(took: str, *, extra: bool = False) -> list[tuple[str, list[object]]]:
    out: list[tuple[str, list[object]]] = [
        ("api", [Text("api"), Text("● running", "yellow"), took]),
        ("web", [Text("web"), Text("✓ success", "green"), "1m 02s"])]
    if extra:
        out.append(("db", [Text("db"), Text("✗ failed", "red"), "9s"]))
    return out


async def test_a_refill_updates_the_changed_cells_and_rebuilds_only_for_new_rows():
    app = OneTable()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(VimTable)
        rebuilds: list[int] = []
        clear = table.clear
        table.clear = lambda columns=False: rebuilds.append(1) or clear(columns)  # type: ignore
        table.fill(COLS, rows("12s"))
        table.move_cursor(row=1)
        await pilot.pause()
        assert rebuilds == [1]

        table.fill(COLS, rows("13s"))  # the running timer moved on
        await pilot.pause()
        assert rebuilds == [1]
        assert str(table.get_cell("api", "took")) == "13s"
        assert table.cursor_row == 1

        count = table._update_count
        table.fill(COLS, rows("13s"))  # nothing changed: nothing to do
        assert table._update_count == count

        table.fill(COLS, rows("13s", extra=True))  # a new row: rebuilt, cursor kept
        await pilot.pause()
        assert rebuilds == [1, 1] and table.row_count == 3 and table.cursor_row == 1


async def test_a_table_refreshed_every_second_keeps_its_rendered_cells_bounded():
    app = OneTable()
    async with app.run_test(size=(60, 40)) as pilot:
        table = app.query_one(VimTable)
        many = [(f"r{n}", [Text(f"svc{n}"), Text("● running"), "1s"]) for n in range(35)]
        for second in range(80):  # every refresh renders every visible cell anew
            table.fill(COLS, [(key, [*cells[:2], f"{second}s"]) for key, cells in many])
            await pilot.pause()
        assert len(table._cell_render_cache) <= 2000  # Textual's own bound: 10,000
        assert str(table.get_cell("r0", "took")) == "79s"
