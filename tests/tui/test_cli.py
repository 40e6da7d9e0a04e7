"""Token resolution and storage; the user config (theme, keymap) round-trips."""

from __future__ import annotations

import stat

import pytest

from seamless_tui import tokens
from seamless_tui.cli import main
from seamless_tui.config import UserConfig


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("SEAMLESS_TUI_CONFIG", str(tmp_path / "cfg" / "tui.toml"))
    monkeypatch.delenv("SEAMLESS_TOKEN", raising=False)


def test_headless_login_says_so_and_falls_back_to_a_private_file(monkeypatch, capsys):
    monkeypatch.setattr(tokens, "_keyring_backend", lambda: None)
    assert main(["login", "--agent", "http://127.0.0.1:1", "--token", "sls_abc"]) == 0
    out = capsys.readouterr().out
    assert "no OS keyring backend" in out and "mode 0600" in out
    path = tokens.token_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tokens.resolve_token("http://127.0.0.1:1", None) == ("sls_abc", str(path))
    assert UserConfig.load().last_agent == "http://127.0.0.1:1"


def test_token_order_is_flag_then_environment_then_store(monkeypatch):
    monkeypatch.setattr(tokens, "_keyring_backend", lambda: None)
    tokens.store_token("http://a", "from-file")
    monkeypatch.setenv("SEAMLESS_TOKEN", "from-env")
    assert tokens.resolve_token("http://a", "from-flag") == ("from-flag", "--token")
    assert tokens.resolve_token("http://a", None) == ("from-env", "SEAMLESS_TOKEN")
    monkeypatch.delenv("SEAMLESS_TOKEN")
    assert tokens.resolve_token("http://a", None)[0] == "from-file"


def test_no_token_is_a_clear_error_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(tokens, "_keyring_backend", lambda: None)
    assert main(["--agent", "http://127.0.0.1:1"]) == 2
    assert "seamless-tui login" in capsys.readouterr().err


def test_user_config_round_trips_theme_and_keymap(tmp_path):
    config = UserConfig(theme="seamless-light", keymap={"dashboard.filter": "f"},
                        path=tmp_path / "tui.toml")
    config.save()
    again = UserConfig.load(tmp_path / "tui.toml")
    assert again.theme == "seamless-light" and again.keymap == {"dashboard.filter": "f"}


def test_with_a_keyring_backend_the_token_goes_to_the_keyring_not_a_file():
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):  # stands in for Secret Service / Keychain
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            self.items: dict[tuple[str, str], str] = {}

        def get_password(self, service, username):  # type: ignore[no-untyped-def]
            return self.items.get((service, username))

        def set_password(self, service, username, password):  # type: ignore[no-untyped-def]
            self.items[(service, username)] = password

        def delete_password(self, service, username):  # type: ignore[no-untyped-def]
            self.items.pop((service, username), None)

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        assert "OS keyring (MemoryKeyring)" in tokens.store_token("http://k", "sls_k")
        assert backend.items == {("seamless", "http://k"): "sls_k"}
        assert not tokens.token_file().exists()
        assert tokens.resolve_token("http://k", None) == ("sls_k", "keyring")
    finally:
        keyring.set_keyring(previous)


def test_login_with_a_refused_token_keeps_the_good_one_and_fails(live_agent, monkeypatch,
                                                                 capsys):
    from store.models import Role

    monkeypatch.setattr(tokens, "_keyring_backend", lambda: None)
    good = live_agent.seeded.tokens[Role.viewer]
    assert main(["login", "--agent", live_agent.url, "--token", good]) == 0
    assert "logged in to" in capsys.readouterr().out
    assert main(["login", "--agent", live_agent.url, "--token", "sls_BAD"]) == 1
    err = capsys.readouterr().err
    assert "refused this token" in err and "nothing was stored" in err
    assert tokens.resolve_token(live_agent.url, None)[0] == good


def test_a_lone_escape_waits_30_ms_unless_escdelay_says_otherwise(monkeypatch):
    """Textual waited 100 ms after Esc for the rest of a sequence, and its input thread
    looked again only every 100 ms: each `escape` ("back") was 100 ms late."""
    import selectors

    import textual.constants
    from textual.drivers import linux_driver

    from seamless_tui import quick_escape

    monkeypatch.setattr(textual.constants, "ESCAPE_DELAY", 0.1)  # both restored after
    monkeypatch.setattr(linux_driver, "selectors", selectors)
    waits: list[float | None] = []

    def select(self, timeout: float | None = None) -> list[object]:  # type: ignore[no-untyped-def]
        waits.append(timeout)
        return []

    monkeypatch.setattr(selectors.SelectSelector, "select", select)
    monkeypatch.setenv("ESCDELAY", "250")
    quick_escape.install()
    assert textual.constants.ESCAPE_DELAY == 0.1  # left alone: Textual reads ESCDELAY
    monkeypatch.delenv("ESCDELAY")
    quick_escape.install()
    assert textual.constants.ESCAPE_DELAY == 0.03
    # The input thread's select(0.1) now returns in time to see the 30 ms pass.
    linux_driver.selectors.SelectSelector().select(0.1)
    assert waits == [0.03]
