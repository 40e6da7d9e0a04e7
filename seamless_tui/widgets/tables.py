"""DataTable with vim keys (j/k, g = top, G = bottom, as in vim and less), and columns that
fit the terminal: each as wide as its widest cell, the flexible one taking the room left
(or giving it up first), optional ones dropped on a narrow terminal — never `↶ rolled bac`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

SCROLLBAR = 2  # room kept for the vertical scrollbar
# Textual's DataTable keeps up to 10,000 rendered cells and 1,000 rows and lines, keyed by a
# counter that moves on with every update: a table refreshed every second (running timers)
# piles up stale renders (~50,000 objects an hour on the dashboard) that every full GC pass
# scans. A tall screenful of the current ones is what is ever hit again.
CELL_CACHE = 2000
ROW_CACHE = 400


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    flex: bool = False  # takes the room left over; shrinks (with …) when there is none
    drop: int = 0  # > 0: may be left out on a narrow terminal, highest first
    min_width: int = 0


Row = tuple[str, Sequence[object]]  # (row key, cells: str or rich Text)


class VimTable(DataTable[object]):
    BINDINGS = [
        Binding("j", "cursor_down", "down", show=False, id="table.down"),
        Binding("k", "cursor_up", "up", show=False, id="table.up"),
        Binding("g", "scroll_top", "top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "bottom", show=False, id="table.bottom"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._cell_render_cache.maxsize = CELL_CACHE
        for cache in (self._row_render_cache, self._row_renderable_cache, self._line_cache):
            cache.maxsize = ROW_CACHE
        self._fitted: tuple[list[Col], Sequence[Row]] | None = None
        self._fitted_width = 0
        self._shape: tuple[object, ...] | None = None  # shown columns (key, width) and row keys

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - an empty or refreshing table has no cursor row
            return None
        return str(key.value) if key.value is not None else None

    def fill(self, cols: list[Col], rows: Sequence[Row]) -> None:
        """Replace columns and rows, sized to the table's width; the cursor stays on its row.

        Screens fill again on every event and every second while a run's timer runs: when
        the columns and rows are the same ones, only the cells that changed are updated (a
        rebuild re-measured every cell and laid the screen out again), and nothing at all
        when no cell changed."""
        width = self.size.width or self.app.size.width
        if self._fitted == (cols, rows) and self._fitted_width == width:
            return
        self._fitted, self._fitted_width = (cols, rows), width
        selected = self.selected_key()
        texts = [(key, [c if isinstance(c, Text) else Text(str(c)) for c in cells])
                 for key, cells in rows]
        widths = fit_widths(cols, [t for _, t in texts], width - SCROLLBAR,
                            pad=2 * self.cell_padding)
        shown = [(i, col) for i, col in enumerate(cols) if widths[i] > 0]
        cut = [(key, [_fit(cells[i] if i < len(cells) else Text(""), widths[i])
                      for i, _col in shown]) for key, cells in texts]
        shape = (tuple((col.key, col.label, widths[i]) for i, col in shown),
                 tuple(key for key, _ in cut))
        if shape == self._shape:
            for key, cells in cut:
                for (_, col), cell in zip(shown, cells, strict=True):
                    if self.get_cell(key, col.key) != cell:
                        self.update_cell(key, col.key, cell)
            return
        self._shape = shape
        self.clear(columns=True)
        for i, col in shown:
            self.add_column(Text(col.label, overflow="ellipsis"), width=widths[i], key=col.key)
        for key, cells in cut:
            self.add_row(*cells, key=key)
        if selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def on_resize(self) -> None:
        if self._fitted is not None:
            self.fill(*self._fitted)


def _fit(cell: Text, width: int) -> Text:
    cut = cell.copy()
    if cut.cell_len > width:
        cut.truncate(width, overflow="ellipsis")
    return cut


def fit_widths(cols: list[Col], rows: list[list[Text]], room: int, pad: int = 2) -> list[int]:
    """Each column's width (0: dropped) so that the whole row fits in `room` cells."""
    natural = []
    for i, col in enumerate(cols):
        cells = [r[i].cell_len for r in rows if i < len(r)]
        natural.append(max([len(col.label), col.min_width, *cells]))
    widths = list(natural)
    flex = next((i for i, c in enumerate(cols) if c.flex), None)
    least = max(cols[flex].min_width, 6) if flex is not None else 0

    def total() -> int:  # the flexible column counted at its least
        return sum((least if i == flex else w) + pad for i, w in enumerate(widths) if w > 0)

    for i in sorted((i for i, c in enumerate(cols) if c.drop), key=lambda i: -cols[i].drop):
        if total() <= room:
            break
        widths[i] = 0
    if flex is not None and widths[flex] > 0:
        widths[flex] = least + max(0, room - total())
    return widths
