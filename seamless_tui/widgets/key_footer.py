"""The footer of every screen: Textual's Footer (same keys, same look, clickable), but
cheap to build and a focus change does not rebuild it.

Textual's Footer recomposes on every change of the screen's bindings: Tab between the
stage list and the log, or opening a stage's log, unmounted and mounted a dozen FooterKey
widgets, each with its styles worked out anew (a fifth of the TUI's time in the
journey). Here a set of keys is one widget drawn with FooterKey's styles (mounting 14
FooterKeys took ~10 ms, one widget ~1 ms: every new screen paid it inside a key), each set
is mounted once and kept, and a focus change shows the set it needs and hides the other.
"""

from __future__ import annotations

from collections import OrderedDict

from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# (key, key display, description, action, enabled, tooltip, classes)
KeySpec = tuple[str, str, str, str, bool, str, str]
MAX_SETS = 8  # the sets kept per screen (a screen has two or three focus places)


class KeySet(Widget):
    """A row of keys drawn as FooterKeys draw themselves (their component styles), in one
    widget: a click on a key presses it, as on a FooterKey."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"footer-key--key", "footer-key--description"}
    DEFAULT_CSS = """
    KeySet {
        width: auto;
        height: 1;
        text-wrap: nowrap;
        background: $footer-item-background;
        .footer-key--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .footer-key--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self, keys: tuple[KeySpec, ...]) -> None:
        super().__init__()
        self.keys = keys
        self._spans: list[tuple[int, int, KeySpec]] = []  # cells [start, end) of each key

    def render(self) -> Text:
        key_style = self.get_component_rich_style("footer-key--key")
        description_style = self.get_component_rich_style("footer-key--description")
        text, self._spans = Text(no_wrap=True, end=""), []
        for spec in self.keys:
            key, display, description, _, enabled, _, _ = spec
            start = text.cell_len
            dim = Style(dim=True) if not enabled else Style()
            text.append(f" {display} ", key_style + dim)  # FooterKey's padding: 0 1
            if description:
                text.append(f"{description} ", description_style + dim)
            self._spans.append((start, text.cell_len, spec))
        text.stylize_before(self.rich_style)
        return text

    def on_mouse_down(self, event: events.MouseDown) -> None:
        for start, end, spec in self._spans:
            if start <= event.x < end:
                if spec[4]:
                    self.app.simulate_key(spec[0])
                else:
                    self.app.bell()
                return


class KeyFooter(Footer):
    def __init__(self) -> None:
        super().__init__()
        self._sets: OrderedDict[tuple[KeySpec, ...], KeySet] = OrderedDict()
        self._shown: tuple[KeySpec, ...] | None = None
        self._palette: tuple[KeySpec | None, FooterKey | None] = (None, None)

    def compose(self) -> ComposeResult:
        return iter(())  # the keys are mounted by _show_keys, once per set

    def bindings_changed(self, screen: Screen) -> None:  # type: ignore[type-arg]
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            # Not after the next refresh (as Footer does): the keys then came a frame after
            # the focus change they follow, a repaint of their own ~40 ms into a busy key.
            self.call_later(self._show_keys)

    def _wanted(self) -> tuple[tuple[KeySpec, ...], KeySpec | None]:
        """What Footer.compose would show: each action's first shown binding, and the
        command palette's key (docked right, in the footer itself as Footer has it)."""
        active = self.screen.active_bindings
        actions: set[str] = set()
        wanted: list[KeySpec] = []
        for _, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in actions:
                actions.add(binding.action)
                wanted.append((binding.key, self.app.get_key_display(binding),
                               binding.description, binding.action, enabled, tooltip, ""))
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        palette_key = None
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE and palette:
            _, binding, enabled, _ = palette
            palette_key = (binding.key, self.app.get_key_display(binding),
                           binding.description, binding.action, enabled,
                           binding.tooltip or binding.description, "-command-palette")
        return tuple(wanted), palette_key

    async def _show_keys(self) -> None:
        if not self.is_attached:
            return
        wanted, palette = self._wanted()
        if palette != self._palette[0]:
            if self._palette[1] is not None:
                await self._palette[1].remove()
            widget = _footer_key(palette) if palette else None
            if widget is not None:
                await self.mount(widget)
            self._palette = (palette, widget)
        if wanted == self._shown:
            return
        keys = self._sets.pop(wanted, None)
        if keys is None:
            keys = KeySet(wanted)
            await self.mount(keys)
        self._sets[wanted] = keys
        for other in self._sets.values():
            other.display = other is keys
        self._shown = wanted
        while len(self._sets) > MAX_SETS:
            _, old = self._sets.popitem(last=False)
            await old.remove()


def _footer_key(spec: KeySpec) -> FooterKey:
    """The command palette's key, as Footer.compose makes it (docked right)."""
    key, display, description, action, enabled, tooltip, classes = spec
    return FooterKey(key, display, description, action, disabled=not enabled,
                     tooltip=tooltip, classes=classes)
