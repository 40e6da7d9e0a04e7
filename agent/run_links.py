"""Signed links to a run's page: `<public_url>/runs/{id}?exp=…&sig=…`.

The signature is an HMAC-SHA256 over the run id and the expiry with an agent key
kept outside the database (`<data_dir>/link.key`, 0600, like the secrets key).
A link grants that run's page and logs and nothing else, until it expires.

The key file holds one key per line, newest first, each with the time it was
made. Rotation puts a new key first and keeps the older ones while a link they
signed can still be valid (a key retired less than the link lifetime ago), so
unexpired links keep working. Verification tries every kept key with a
constant-time compare.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from agent.config import AgentConfig
from store.private_files import write_private_file

DEFAULT_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True)
class LinkKey:
    made_at: int
    secret: bytes

    def line(self) -> str:
        return f"{self.made_at} {self.secret.hex()}\n"


class LinkRefused(Exception):
    """Why a link does not open its page (shown on the 403 page)."""


def _parse(text: str, path: Path) -> list[LinkKey]:
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            made, value = line.split()
            keys.append(LinkKey(int(made), bytes.fromhex(value)))
        except ValueError:
            raise ValueError(f"{path}:{number}: not '<unix time> <hex key>'") from None
    if not keys:
        raise ValueError(f"{path} holds no link key")
    return keys


def write_link_keys(path: Path, keys: list[LinkKey]) -> None:
    write_private_file(path, "".join(key.line() for key in keys))


def new_key(at: float | None = None) -> LinkKey:
    return LinkKey(int(at if at is not None else time.time()), secrets.token_bytes(32))


def rotate_link_keys(path: Path, ttl_s: float = DEFAULT_TTL_S, at: float | None = None
                     ) -> list[LinkKey]:
    """A new key first; an old key stays while links it signed may be unexpired: it was
    the signing key until its successor was made, and that is less than `ttl_s` ago."""
    at = time.time() if at is None else at
    old = _parse(path.read_text(), path) if path.exists() else []
    kept = [key for newer, key in zip(old, old[1:], strict=False)
            if at - newer.made_at < ttl_s]
    keys = [new_key(at), *old[:1], *kept]
    write_link_keys(path, keys)
    return keys


class RunLinks:
    """Signs and checks run-page links; re-reads the key file when it changes (a rotation
    by `seamless-agent links rotate-key` reaches the running agent)."""

    def __init__(self, key_path: Path, base_url: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.key_path = key_path
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        if not key_path.exists():
            write_link_keys(key_path, [new_key()])
        self._stamp: tuple[int, int] | None = None
        self._keys: list[LinkKey] = []
        self._load()

    @classmethod
    def for_config(cls, config: AgentConfig) -> RunLinks:
        return cls(config.link_key_path, config.public_url or config.url,
                   config.link_ttl_days * 24 * 3600)

    def _load(self) -> list[LinkKey]:
        stat = self.key_path.stat()
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._keys = _parse(self.key_path.read_text(), self.key_path)
            self._stamp = stamp
        return self._keys

    @staticmethod
    def _mac(key: LinkKey, run_id: int, expires: int) -> str:
        message = f"seamless-run-page:{run_id}:{expires}".encode()
        return hmac.new(key.secret, message, hashlib.sha256).hexdigest()

    def sign(self, run_id: int, now: float | None = None) -> dict[str, str]:
        """The query that opens run `run_id`'s page until now + ttl."""
        expires = int((time.time() if now is None else now) + self.ttl_s)
        return {"exp": str(expires), "sig": self._mac(self._load()[0], run_id, expires)}

    def url(self, run_id: int, now: float | None = None) -> str:
        return self.link(run_id, now)[0]

    def link(self, run_id: int, now: float | None = None) -> tuple[str, int]:
        """(the page's URL, its expiry as unix time)."""
        query = self.sign(run_id, now)
        return f"{self.base_url}/runs/{run_id}?{urlencode(query)}", int(query["exp"])

    def check(self, run_id: int, exp: str | None, sig: str | None,
              now: float | None = None) -> int:
        """The link's expiry (unix time) when it opens run `run_id`; else LinkRefused."""
        if not exp or not sig:
            raise LinkRefused("this link lacks its " + ("signature (sig=)" if not sig
                                                        else "expiry (exp=)"))
        if not exp.isdigit() or len(exp) > 12:
            raise LinkRefused(f"this link's expiry exp={exp[:20]!r} is not a unix time")
        if len(sig) != 64 or not sig.isascii():
            raise LinkRefused("this link's signature does not match: it was changed, or "
                              "made for another run or by another agent")
        expires = int(exp)
        matched = False
        for key in self._load():  # every key, each compared in constant time
            matched |= hmac.compare_digest(self._mac(key, run_id, expires), sig)
        if not matched:
            raise LinkRefused("this link's signature does not match: it was changed, or "
                              "made for another run or by another agent")
        if expires <= (time.time() if now is None else now):
            raise LinkRefused("this link has expired")
        return expires
