"""Secret masking: every common encoding, and secrets split across chunks."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from agent.logs.masking import SecretMasker
from store.models import SECRET_MASK

SECRET = "s3cr3t/p@ss+word"


def test_plain_url_and_json_forms_are_masked() -> None:
    masker = SecretMasker([SECRET])
    for form in (SECRET, quote(SECRET, safe=""), json.dumps(SECRET)[1:-1]):
        masked = masker.mask(f"before {form} after")
        assert masked == f"before {SECRET_MASK} after"


def test_base64_is_masked_in_every_alignment_inside_a_larger_blob() -> None:
    masker = SecretMasker([SECRET])
    for prefix in ("", "u", "us", "use", "user:"):
        encoded = base64.b64encode(f"{prefix}{SECRET}:tail".encode()).decode()
        masked = masker.mask(f"Authorization: Basic {encoded}")
        assert SECRET_MASK in masked
        # No run of the secret's own characters survives: at most a few bits at the edges.
        core = base64.b64encode(b"\0" * 3 + SECRET.encode()).decode()[4:16]
        assert core not in masked


def test_short_secrets_are_ignored_to_avoid_masking_ordinary_words() -> None:
    masker = SecretMasker(["abc", "", "true"])
    assert masker.mask("abc is true") == f"abc is {SECRET_MASK}"


def test_longest_overlapping_secret_wins() -> None:
    masker = SecretMasker(["token", "token-extended"])
    assert masker.mask("x token-extended y") == f"x {SECRET_MASK} y"


def test_a_secret_cut_between_two_pieces_of_a_line_is_masked_in_both() -> None:
    masker = SecretMasker([SECRET])
    pieces = masker.mask_lines(["a" * 95 + SECRET[:5], SECRET[5:] + "b" * 100])
    assert pieces == ["a" * 95 + SECRET_MASK, SECRET_MASK + "b" * 100]
