"""ANSI colour codes of a log line → HTML spans, every character of text escaped.

Only SGR (`ESC[…m`) becomes markup, and only as class names (`f1`, `g4`, `b`):
the page's Content-Security-Policy allows no inline styles, and nothing from
the log ever reaches an attribute. 256-colour and 24-bit colours map to the
nearest of the 16 basic ones. Every other escape sequence is dropped.
"""

from __future__ import annotations

import re
from html import escape

_ESCAPE = re.compile(r"\x1b(?:\[([0-?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# xterm's 16 basic colours, for the nearest match of 256-colour and 24-bit codes.
_BASIC_RGB = [(0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205),
              (0, 205, 205), (229, 229, 229), (127, 127, 127), (255, 0, 0), (0, 255, 0),
              (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255)]


def _nearest(rgb: tuple[int, int, int]) -> int:
    return min(range(16), key=lambda i: sum((a - b) ** 2 for a, b in zip(_BASIC_RGB[i], rgb,
                                                                         strict=True)))


def _from_256(n: int) -> int:
    if n < 16:
        return n
    if n < 232:
        n -= 16
        levels = [0, 95, 135, 175, 215, 255]
        return _nearest((levels[n // 36], levels[(n // 6) % 6], levels[n % 6]))
    grey = 8 + (n - 232) * 10
    return _nearest((grey, grey, grey))


class _Style:
    __slots__ = ("fg", "bg", "bold", "dim", "italic", "underline")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.fg: int | None = None
        self.bg: int | None = None
        self.bold = self.dim = self.italic = self.underline = False

    def classes(self) -> str:
        names = []
        if self.fg is not None:
            names.append(f"f{self.fg}")
        if self.bg is not None:
            names.append(f"g{self.bg}")
        names += [name for name, on in (("b", self.bold), ("d", self.dim), ("i", self.italic),
                                        ("u", self.underline)) if on]
        return " ".join(names)

    def apply(self, params: str) -> None:
        codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] or [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            if code == 0:
                self.reset()
            elif code in (1, 2, 3, 4):
                setattr(self, ("bold", "dim", "italic", "underline")[code - 1], True)
            elif code == 22:
                self.bold = self.dim = False
            elif code == 23:
                self.italic = False
            elif code == 24:
                self.underline = False
            elif 30 <= code <= 37 or 90 <= code <= 97:
                self.fg = code - 30 if code < 90 else code - 82
            elif 40 <= code <= 47 or 100 <= code <= 107:
                self.bg = code - 40 if code < 100 else code - 92
            elif code == 39:
                self.fg = None
            elif code == 49:
                self.bg = None
            elif code in (38, 48):
                colour, used = _extended(codes[i + 1:])
                i += used
                if colour is not None:
                    if code == 38:
                        self.fg = colour
                    else:
                        self.bg = colour
            i += 1


def _extended(rest: list[int]) -> tuple[int | None, int]:
    """`5;n` (256 colours) or `2;r;g;b` after a 38/48: (basic colour, codes used)."""
    if len(rest) >= 2 and rest[0] == 5:
        return _from_256(min(rest[1], 255)), 2
    if len(rest) >= 4 and rest[0] == 2:
        r, g, b = (min(v, 255) for v in rest[1:4])
        return _nearest((r, g, b)), 4
    return None, len(rest)


def _text(piece: str) -> str:
    return escape(_CONTROL.sub("", piece.replace("\t", "    ")), quote=True)


def ansi_to_html(line: str) -> str:
    """One log line as escaped HTML with `<span class=…>` for its colours."""
    if "\x1b" not in line:
        return _text(line)
    out: list[str] = []
    style = _Style()
    position = 0
    open_span = False
    for match in _ESCAPE.finditer(line):
        piece = line[position:match.start()]
        if piece:
            out.append(_text(piece))
        position = match.end()
        if match.group(2) != "m":
            continue  # cursor moves, OSC titles and links: not shown
        style.apply(match.group(1) or "0")
        if open_span:
            out.append("</span>")
            open_span = False
        classes = style.classes()
        if classes:
            out.append(f'<span class="{classes}">')
            open_span = True
    tail = line[position:]
    if tail:
        out.append(_text(tail))
    if open_span:
        out.append("</span>")
    return "".join(out)
