"""Finding a secret in text the agent let out, in every encoding a tool might print.

Independent of the agent's masker on purpose: it looks for the plain value, its
URL, JSON, base64 (any alignment, wrapped at any column) and hex forms, with line
breaks and ANSI escape codes removed first (a secret split across lines or
coloured character by character is still a leak), and for each line of a
multi-line secret (a PEM key printed line by line).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\\u001b\[[0-?]*[ -/]*[@-~]")
_BREAKS = re.compile(r"\r|\n|\\r|\\n")


def forms(secret: str) -> dict[str, str]:
    """name → text that must never appear."""
    raw = secret.encode()
    found = {"plain": secret, "url": quote(secret, safe=""), "url+": quote_plus(secret),
             "json": json.dumps(secret)[1:-1], "hex": raw.hex(), "HEX": raw.hex().upper()}
    for offset in range(3):  # base64 of the secret inside a larger blob: its middle part
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        found[f"base64@{offset}"] = encoded[4:-4] if offset else encoded.rstrip("=")[:-2]
    if "\n" in secret.strip():
        for number, line in enumerate(secret.strip().splitlines()):
            if len(line.strip()) >= 8:
                found[f"line {number + 1}"] = line.strip()
    return {name: form for name, form in found.items() if len(form) >= 6}


def flatten(text: str) -> str:
    """ANSI codes and line breaks (also JSON-escaped ones) removed."""
    return _BREAKS.sub("", _ANSI.sub("", text))


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """Which forms of which secrets are in `text` (empty: clean)."""
    flat = flatten(text)
    return [f"{name} of {secret[:4]}…" for secret in secrets
            for name, form in forms(secret).items()
            if form in text or flatten(form) in flat]
