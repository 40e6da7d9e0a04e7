"""Keep a log line's colours, drop everything that would move the cursor or change the
terminal (clear screen, cursor jumps, titles, alternate screen, bells)."""

from __future__ import annotations

import re

# CSI sequences: keep only SGR (`m`), which is colour and text style.
_CSI = re.compile(r"\x1b\[([0-?]*)[ -/]*([@-~])")
# OSC (titles, hyperlinks, clipboard) up to BEL or ST; other two-byte escapes.
_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_OTHER_ESC = re.compile(r"\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -/]*[0-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")
_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def _keep_sgr(match: re.Match[str]) -> str:
    return match.group(0) if match.group(2) == "m" else ""


def sanitize(text: str) -> str:
    """Printable text plus SGR colour codes only."""
    if "\r" in text:
        # A progress bar redraws the line: show what the terminal would finally show.
        text = text.rstrip("\r").rsplit("\r", 1)[-1]
    if "\x1b" in text:
        text = _OSC.sub("", text)
        text = _CSI.sub(_keep_sgr, text)
        text = _OTHER_ESC.sub(lambda m: m.group(0) if m.group(0).startswith("\x1b[") else "",
                              text)
    if "\t" in text:
        text = text.expandtabs(4)
    return _CONTROL.sub("", text)


def plain(text: str) -> str:
    """The sanitized text without colour codes (for widths and search)."""
    return _SGR.sub("", text) if "\x1b" in text else text
