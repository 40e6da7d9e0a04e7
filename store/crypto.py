"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`) with the key
kept outside the database.

A key file holds one or more Fernet keys, newest first. Values are stored as
`enc:v1:<token>`; anything without the prefix is a plaintext value from before
encryption, re-encrypted when the agent starts. Rotation (`seamless-agent secrets
rotate-key`) puts a new key first, re-encrypts every value with it, then drops the
old keys: at every step the file holds each key a stored value needs.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from store.private_files import write_private_file

PREFIX = "enc:v1:"


class SecretCipher:
    def __init__(self, key_path: Path) -> None:
        self.key_path = Path(key_path)
        self._fernet = self._load()

    def _load(self) -> MultiFernet:
        keys = [line.strip() for line in self.key_path.read_text().splitlines() if line.strip()]
        if not keys:
            raise ValueError(f"{self.key_path} holds no key")
        return MultiFernet([Fernet(key.encode()) for key in keys])

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.startswith(PREFIX)

    def encrypt(self, value: str) -> str:
        if self.is_encrypted(value):
            return value
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        if not self.is_encrypted(value):
            return value
        token = value[len(PREFIX):].encode()
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:  # the key file was rotated by another process: read it again
            self._fernet = self._load()
            return self._fernet.decrypt(token).decode()

    def rotate(self, value: str) -> str:
        """`value` encrypted with the newest key."""
        if not self.is_encrypted(value):
            return self.encrypt(value)
        return PREFIX + self._fernet.rotate(value[len(PREFIX):].encode()).decode()

    def reload(self) -> None:
        self._fernet = self._load()


def write_keys(path: Path, keys: list[str]) -> None:
    write_private_file(path, "".join(f"{key}\n" for key in keys))


def read_keys(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def ensure_key_file(path: Path) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_keys(path, [Fernet.generate_key().decode()])
    return path


def new_key() -> str:
    return Fernet.generate_key().decode()
