"""Edit a service's config (admins). Validation is the agent's: a 422 puts each message
under its field."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Static

from seamless_tui.client import ApiError
from seamless_tui.screens.base import BaseScreen
from seamless_tui.widgets.key_footer import KeyFooter
from seamless_tui.widgets.topbar import TopBar
from store.models import Service

FIELDS = ("repo_url", "branch", "stage_image", "prepare_command", "code_quality_command",
          "unit_test_command", "dockerfile", "build_context", "compose_file",
          "integration_test_command", "image_repository", "container_port", "stage_timeout_s")
_READ_ONLY = {"id", "created_at", "updated_at", "pinned"}


class ConfigForm(BaseScreen):
    BINDINGS = [
        Binding("ctrl+s", "save", "save", id="config.save"),
        Binding("escape", "app.go_back", "cancel", id="config.cancel"),
    ]

    def __init__(self, service: Service) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        yield TopBar(f"Seamless › {self.service.name} › edit config")
        with VerticalScroll():
            yield Static("", id="form-error")
            for name in FIELDS:
                value = getattr(self.service, name)
                yield Label(name.replace("_", " "))
                yield Input("" if value is None else str(value), id=f"f-{name}")
                yield Static("", id=f"e-{name}", classes="field-error")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def body(self) -> dict[str, Any]:
        data = self.service.model_dump(mode="json", exclude=_READ_ONLY)
        for name in FIELDS:
            raw = self.query_one(f"#f-{name}", Input).value.strip()
            data[name] = raw or None if name not in ("build_context", "branch", "repo_url",
                                                     "container_port") else raw
        return data

    def action_save(self) -> None:
        body, name = self.body(), self.service.name

        async def save() -> Service | ApiError:
            try:
                return await self.client.update_service(name, body)
            except ApiError as exc:
                return exc

        self.fetch(save, self.show_saved)

    def show_saved(self, result: Service | ApiError) -> None:
        for err in self.query(".field-error"):
            err.update("")  # type: ignore[attr-defined]
        if isinstance(result, ApiError):
            unplaced = []
            for field, message in result.field_errors.items():
                name = field.split(".")[-1] if field.split(".")[-1] in FIELDS else field
                if name in FIELDS:
                    self.query_one(f"#e-{name}", Static).update(f"✗ {message}")
                else:
                    unplaced.append(f"{field}: {message}")
            summary = "; ".join(unplaced) or ("fix the fields marked ✗" if result.field_errors
                                              else result.message)
            self.query_one("#form-error", Static).update(Text(f"✗ {summary}", "bold"))
            return
        self.notify(f"{result.name}: config saved")
        self.app.pop_screen()
