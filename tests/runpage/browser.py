"""Debian's chromium, headless, driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def chromium(**context: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies); `make test-tools` installs chromium."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make test-tools` (apt-get install "
                           "chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_context(**context)
        finally:
            browser.close()
