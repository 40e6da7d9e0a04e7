"""A real git repository shared by services (a monorepo), made by the tests: two
services and a shared library folder."""

from __future__ import annotations

from pathlib import Path

from tests.sample_repo import git


class MonoRepo:
    """A real repository: two services and a shared library folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bare: Path | None = None
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.email", "t@example.com")
        git(path, "config", "user.name", "t")
        self.commit("initial", {"services/api/app.py": "api 1\n",
                                "services/web/app.py": "web 1\n",
                                "libs/common/util.py": "util 1\n", "README.md": "shop\n"})

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        for name, text in files.items():
            target = self.path / name
            if text is None:
                git(self.path, "rm", "-q", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            git(self.path, "add", name)
        git(self.path, "commit", "-q", "-m", message)
        return self.head()

    def rename(self, old: str, new: str) -> str:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        git(self.path, "mv", old, new)
        git(self.path, "commit", "-q", "-m", f"move {old}")
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")

    def publish(self, bare: Path) -> str:
        """A bare clone at `bare` (e.g. under git daemon) that `push` updates."""
        bare.parent.mkdir(parents=True, exist_ok=True)
        git(bare.parent, "clone", "-q", "--bare", str(self.path), str(bare))
        self.bare = bare
        return str(bare)

    def push(self) -> str:
        assert self.bare is not None, "publish() first"
        git(self.path, "push", "-q", "--force", str(self.bare), "HEAD:main")
        return self.head()
