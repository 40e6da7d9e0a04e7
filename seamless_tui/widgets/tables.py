"""DataTable with vim keys (j/k, g = top, G = bottom, as in vim and less)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import DataTable


class VimTable(DataTable[object]):
    BINDINGS = [
        Binding("j", "cursor_down", "down", show=False, id="table.down"),
        Binding("k", "cursor_up", "up", show=False, id="table.up"),
        Binding("g", "scroll_top", "top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "bottom", show=False, id="table.bottom"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - an empty or refreshing table has no cursor row
            return None
        return str(key.value) if key.value is not None else None
