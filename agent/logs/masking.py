"""Masking secret values in everything that leaves the agent.

A secret can leak in its plain form or in an encoding a build tool printed:
base64 (a Basic auth header, a docker config; also wrapped at 76 columns),
URL-encoded (a connection string), JSON-escaped (a config dump), hex (a
digest tool, `xxd`). A multi-line secret (a PEM key) printed line by line
leaks each line, so each line of it is a secret of its own. Every form goes
into one compiled alternation, longest first, so one `sub` masks them all.

Between any two characters of a form the pattern accepts line breaks and ANSI
escape codes: a secret split across two lines (or wrapped base64, or coloured
character by character) still matches. The match is replaced piece by piece:
each line of it becomes the mask, and the escape codes inside it are kept, so
the terminal colours stay as they were ("masked on the text with ANSI removed,
then re-applied").

Streaming: a stage log holds back a last line that ends with the beginning of
a secret until the next line arrives (or a short time passes), so a secret
split across lines, chunks or stdout/stderr is whole when it is masked; see
`agent.logs.stage_writer.StageLogWriter`.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from store.models import SECRET_MASK

# Shorter values are ignored: masking "abc" or "true" would blank ordinary words
# all over the log (unreadable output, and a hint at the value), while a value
# that short is guessable anyway; their base64 fragments would also match at
# random in any base64 text.
MIN_SECRET_LEN = 4

# What may sit between two characters of a secret: ANSI escape sequences (CSI and
# OSC) and line breaks. Kept out of the mask's text, put back around it.
ANSI = r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]"
_GAP = rf"(?:{ANSI}|\r?\n)*"
_ANSI_RE = re.compile(ANSI)
_ANSI_OR_NEWLINE = re.compile(rf"{ANSI}|\n")


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text) if "\x1b" in text else text


def _base64_forms(raw: bytes) -> set[str]:
    """The base64 text that a secret produces wherever it sits in a larger encoded
    blob: one form per alignment (offset 0, 1, 2 within a 3-byte group), keeping
    only the characters that depend on the secret's bytes alone."""
    forms = set()
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        total = offset + len(raw)
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        determined = encoded[: total * 8 // 6]  # trailing chars also hold later bytes' bits
        forms.add(determined[skip:])
        # The URL-safe alphabet (JWTs, many tokens) differs only in two characters.
        forms.add(determined[skip:].replace("+", "-").replace("/", "_"))
    return forms


def encoded_forms(secret: str) -> set[str]:
    """Every form of `secret` that gets masked (empty for too-short secrets)."""
    if len(secret.strip()) < MIN_SECRET_LEN:
        return set()
    forms = {secret, quote(secret, safe=""), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    raw = secret.encode()
    forms |= _base64_forms(raw)
    forms |= {raw.hex(), raw.hex().upper()}
    if "\n" in secret.strip():  # a PEM key or a certificate: printed line by line
        for line in secret.splitlines():
            forms |= encoded_forms(line.strip())
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


# A line that ends with this many characters of a secret waits (HOLD_S at most) for the
# other stream's next line: Docker copies stdout and stderr through separate pipes, so the
# rest of a secret split across them can arrive after other lines of the first stream.
CROSS_STREAM_HEAD = 4


def _pattern_of(form: str) -> str:
    """`form` with line breaks and escape codes allowed between its characters."""
    chars = [c for c in form if c not in "\r\n"]  # the form's own breaks are gaps too
    return _GAP.join(re.escape(c) for c in chars)


def _masked_piece(match: re.Match[str]) -> str:
    """The mask for one match: each line of it masked, its escape codes kept."""
    text = match.group(0)
    if "\n" not in text and "\x1b" not in text:
        return SECRET_MASK
    out, line_has_text, pos = [], False, 0
    for gap in _ANSI_OR_NEWLINE.finditer(text):
        if gap.start() > pos:
            line_has_text = True
        if gap.group(0) == "\n":
            if line_has_text:
                out.append(SECRET_MASK)
            out.append("\n")
            line_has_text = False
        else:
            out.append(gap.group(0))
        pos = gap.end()
    if pos < len(text) or line_has_text:
        out.append(SECRET_MASK)
    return "".join(out)


class SecretMasker:
    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= encoded_forms(secret)
        ordered = sorted(forms, key=len, reverse=True)  # longest match wins
        self.active = bool(ordered)
        self.forms = ordered
        self.max_len = max((len(f.encode()) for f in ordered), default=0)
        self._pattern = re.compile("|".join(_pattern_of(f) for f in ordered)) \
            if ordered else None
        self._max_chars = max((len(f) for f in ordered), default=0)
        heads = {f[:CROSS_STREAM_HEAD] for f in ordered if len(f) > CROSS_STREAM_HEAD}
        self._heads = re.compile("|".join(re.escape(h) for h in sorted(heads))) \
            if heads else None

    def mask(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(_masked_piece, text)

    def mask_lines(self, lines: list[str]) -> list[str]:
        """Mask consecutive lines as one text, so a secret split across them is found;
        the number of lines never changes."""
        if self._pattern is None:
            return lines
        joined = "\n".join(lines)
        masked = self._pattern.sub(_masked_piece, joined)
        return lines if masked is joined or masked == joined else masked.split("\n")

    def unfinished_tail(self, lines: list[str]) -> int:
        """How many of the last `lines` end with the beginning of a secret (and should
        wait for the next line before leaving): 0 when the tail cannot start one."""
        if not self.active or not lines:
            return 0
        tail, sizes = "", []
        for line in reversed(lines):
            clean = strip_ansi(line).replace("\r", "")
            tail = clean + tail
            sizes.append(len(clean))
            if len(tail) >= self._max_chars:
                break
        k = self._longest_beginning(tail)
        if not k:
            return 0
        held, covered = 0, 0
        for size in sizes:  # the lines the k characters reach back into
            held += 1
            covered += size
            if covered >= k:
                break
        return held

    def open_lines(self, lines: list[str]) -> list[int]:
        """Indices of the lines that end with at least CROSS_STREAM_HEAD characters of a
        secret's beginning: its rest may come on the other stream. One scan of the batch
        for the forms' heads, so output without them costs a single regex pass."""
        if self._heads is None or not self._heads.search("\n".join(lines)):
            return []
        return [i for i, line in enumerate(lines)
                if self._heads.search(line) and self._longest_beginning(
                    strip_ansi(line).replace("\r", "")[-self._max_chars:])
                >= CROSS_STREAM_HEAD]

    def _longest_beginning(self, tail: str) -> int:
        """The longest k such that `tail` ends with the first k (< len) characters of a
        form: str.find/startswith only, so a long form (a PEM's hex) stays cheap."""
        best = 0
        for form in self.forms:
            window = tail[-(len(form) - 1):] if len(form) > 1 else ""
            i = window.find(form[0])
            while i != -1 and len(window) - i > best:
                if form.startswith(window[i:]):
                    best = len(window) - i
                    break
                i = window.find(form[0], i + 1)
        return best


@functools.lru_cache(maxsize=64)
def masker_for(secrets: tuple[str, ...]) -> SecretMasker:
    """One masker per set of secrets, shared by every stage that masks the same ones:
    compiling the pattern of a few hundred secrets costs milliseconds, and every stage
    of a run (and every run of a service) masks the same set. Keyed by the secrets in
    their order: the masker is built exactly as it would be uncached."""
    return SecretMasker(secrets)
