"""Masking secret values in stage output.

A secret can leak in its plain form or in an encoding a build tool printed:
base64 (e.g. a Basic auth header or a docker config), URL-encoded (a
connection string), JSON-escaped (a config dump). Every form goes into one
compiled alternation, longest first, so one `sub` per line masks them all.

Streaming: the log sink reassembles lines before masking, so a secret split
across two chunks is whole again when it is masked. Only lines longer than the
64 KiB split limit need more care: `safe_cut` moves a cut so that it never
falls inside a secret.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote, quote_plus

from store.models import SECRET_MASK

# Shorter values are ignored: masking "abc" or "true" would blank ordinary words
# all over the log (unreadable output, and a hint at the value), while a value
# that short is guessable anyway; their base64 fragments would also match at
# random in any base64 text.
MIN_SECRET_LEN = 4


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
    return forms


def encoded_forms(secret: str) -> set[str]:
    """Every form of `secret` that gets masked (empty for too-short secrets)."""
    if len(secret) < MIN_SECRET_LEN:
        return set()
    forms = {secret, quote(secret, safe=""), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= _base64_forms(secret.encode())
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


class SecretMasker:
    def __init__(self, secrets: list[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= encoded_forms(secret)
        ordered = sorted(forms, key=len, reverse=True)  # longest match wins
        self.active = bool(ordered)
        self.max_len = max((len(f.encode()) for f in ordered), default=0)
        alternation = "|".join(re.escape(f) for f in ordered)
        self._pattern = re.compile(alternation) if ordered else None
        self._bytes_pattern = re.compile(alternation.encode()) if ordered else None

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(SECRET_MASK, text)

    def safe_cut(self, data: bytes, cut: int) -> int:
        """A cut position <= `cut` that does not split an occurrence of a secret.
        The caller keeps at least `max_len` bytes after `cut`, so every occurrence
        that crosses it is complete in `data`."""
        if self._bytes_pattern is None:
            return cut
        start = max(0, cut - self.max_len)
        for match in self._bytes_pattern.finditer(data, start, cut + self.max_len):
            if match.start() < cut < match.end():
                return match.start()
        return cut
