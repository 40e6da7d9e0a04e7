"""Web links from clone URLs: https, ssh and scp-like forms; no credentials; local paths none."""

from __future__ import annotations

import pytest

from seamless_tui.links import run_link, web_base


@pytest.mark.parametrize(("url", "base"), [
    ("https://github.com/acme/shop.git", "https://github.com/acme/shop"),
    ("https://x-access-token:secret@github.com/acme/shop", "https://github.com/acme/shop"),
    ("git@github.com:acme/shop.git", "https://github.com/acme/shop"),
    ("ssh://git@gitea.local:2222/acme/shop.git", "https://gitea.local/acme/shop"),
    ("/srv/git/shop.git", None),
    ("file:///srv/git/shop.git", None),
])
def test_web_base_of_clone_urls(url: str, base: str | None) -> None:
    assert web_base(url) == base


def test_pull_request_runs_link_to_the_pull_request() -> None:
    assert run_link("git@github.com:acme/shop.git", "abc", 12) == \
        "https://github.com/acme/shop/pull/12"
    assert run_link("git@github.com:acme/shop.git", "abc") == \
        "https://github.com/acme/shop/commit/abc"
