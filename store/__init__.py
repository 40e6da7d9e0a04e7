"""Seamless state: SQLite through one `Store`, and the pydantic models in `store.models`.

The TUI imports only `store.models`; importing this package stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store.store import Store as Store


def __getattr__(name: str):  # lazy: `from store import Store` without loading sqlite for the TUI
    if name == "Store":
        from store.store import Store

        return Store
    raise AttributeError(name)
