"""`seamless-agent init`: the first-run wizard (interactive, or all answers as flags).

Each answer is checked as it is given. The config TOML is loaded, merged and written back
with only the keys whose value changed, so a re-run changes only what you change. The
GitHub token goes to a 0600 secrets file in the data dir, never into the config.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import tomli_w

from agent.config import LOCAL_IS_PER_PIPELINE, AgentConfig, default_config_path
from agent.onboarding.checks import Check, check_aws, check_docker, check_github
from agent.onboarding.secrets import read_secrets, write_secret
from store.models import DockerTargetConfig, EcsTargetConfig, NoTargetConfig, PipelineConfig
from store.store import NotFound, Store

TARGET_KINDS = ("docker", "ecs", "none")
MAX_TRIES = 3


class Ui(Protocol):
    def ask(self, question: str, default: str | None = None, hide: bool = False) -> str: ...
    def say(self, text: str, err: bool = False) -> None: ...


class InitError(RuntimeError):
    def __init__(self, check: Check) -> None:
        self.check = check
        super().__init__(str(check))


@dataclass
class InitOptions:
    """Flags; None means 'not given' (ask when interactive, else leave unchanged)."""

    config_path: Path = field(default_factory=default_config_path)
    interactive: bool = True
    data_dir: Path | None = None
    host: str | None = None
    port: int | None = None
    public_url: str | None = None
    executor: str | None = None
    docker_host: str | None = None
    github_token: str | None = None
    github_api_url: str | None = None
    aws_region: str | None = None
    aws_profile: str | None = None
    aws_endpoint_url: str | None = None  # STS/ECS endpoint override (tests: moto)
    pipeline: str | None = None
    staging_target: str | None = None
    staging_cluster: str | None = None
    production_target: str | None = None
    production_cluster: str | None = None


@dataclass
class InitResult:
    config_path: Path
    changed: dict[str, Any]
    token_saved: bool = False
    pipeline: str | None = None
    checks: list[Check] = field(default_factory=list)


def read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def write_config(path: Path, values: dict[str, Any]) -> None:
    known = {k: str(v) if isinstance(v, Path) else v for k, v in values.items()
             if k in AgentConfig.model_fields and k != "github_token" and v is not None}
    AgentConfig(**known)  # refuse to write a config the agent would not load
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(known))
    os.replace(tmp, path)


class Wizard:
    def __init__(self, opts: InitOptions, ui: Ui) -> None:
        self.opts, self.ui = opts, ui
        self.existing = read_config(opts.config_path)
        self.changes: dict[str, Any] = {}
        if self.existing.get("executor") == "local":
            # Older configs could run every stage on the host; that is a pipeline's setting now.
            del self.existing["executor"]
            self.changes["executor"] = "auto"
            ui.say("! executor = \"local\" is no longer an agent setting: this config now says"
                   " \"auto\" (stages in containers); set `executor = \"local\"` on the "
                   "pipeline that must run on this host")
        self.current = AgentConfig(**self.existing)
        self.result = InitResult(opts.config_path, self.changes)

    def value(self, key: str) -> Any:
        return self.changes.get(key, getattr(self.current, key))

    def answer(self, key: str, question: str, cast: Callable[[str], Any] = str,
               prompt: bool = True) -> None:
        given = getattr(self.opts, key)
        while given is None and self.opts.interactive and prompt:
            current = getattr(self.current, key)
            reply = self.ui.ask(question, "" if current is None else str(current)).strip()
            if not reply:
                break
            try:
                given = cast(reply)
            except ValueError:
                self.ui.say(f"✗ {reply!r} is not a valid answer here", err=True)
        if given is not None and given != getattr(self.current, key):
            self.changes[key] = given

    def checked(self, check: Check) -> bool:
        """Report a check; False (interactive) lets the caller ask again, else it raises."""
        self.result.checks.append(check)
        if check.ok:
            self.ui.say(("! " if check.warning else "✓ ") + str(check))
            return True
        self.ui.say(f"✗ {check}", err=True)
        if not self.opts.interactive:
            raise InitError(check)
        return False

    # -- the questions, in order --------------------------------------------------------------
    def run(self) -> InitResult:
        self.answer("data_dir", "Data directory (SQLite, mirrors, workspaces)", Path)
        self.answer("host", "Bind address for the API")
        self.answer("port", "API port", int)
        self.answer("public_url", "Public URL GitHub can reach (blank: no webhooks)")
        self.ask_docker()
        self.ask_github()
        self.ask_aws()
        data_dir = Path(self.value("data_dir")).expanduser()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.changes or not self.opts.config_path.exists() or "github_token" in self.existing:
            write_config(self.opts.config_path, {**self.existing, **self.changes})
        if self.result.token_saved:
            write_secret(data_dir, "github_token", self.opts.github_token, self.key_path())
        elif self.existing.get("github_token"):
            # An older config held the token in the clear: it moves to the 0600 file.
            write_secret(data_dir, "github_token", str(self.existing["github_token"]),
                         self.key_path())
            self.ui.say(f"! moved github_token from {self.opts.config_path} to the 0600"
                        f" secrets file in {data_dir}")
        self.ask_pipeline(data_dir)
        return self.result

    def key_path(self) -> Path:
        """The key the agent will encrypt secrets with (its `key_file`, else the default)."""
        return AgentConfig(data_dir=Path(self.value("data_dir")).expanduser(),
                           key_file=self.value("key_file")).key_path

    def ask_docker(self) -> None:
        self.answer("executor", "Stage executor (auto | docker)")
        if self.value("executor") == "local":
            raise InitError(Check(False, LOCAL_IS_PER_PIPELINE))
        # Asked only when the local socket fails; a flag is taken as given.
        self.answer("docker_host", "Docker host URL", prompt=False)
        for _ in range(MAX_TRIES):
            check = check_docker(self.value("docker_host"))
            if check.ok:
                self.checked(check)
                return
            if self.opts.interactive:
                self.ui.say(f"✗ {check}", err=True)
                before = self.value("docker_host")
                self.opts.docker_host = None
                self.answer("docker_host", "Docker host URL (Enter: keep, and go on anyway)")
                if self.value("docker_host") != before:
                    continue
            if self.value("executor") == "auto":
                # Not fatal: with 'auto', stages wait for the engine (never run on the host).
                self.checked(Check(True, check.message + " — executor 'auto': stages wait "
                                   "for the engine", check.fix, warning=True))
                return
            self.checked(check)
            raise InitError(check)
        raise InitError(check)

    def ask_github(self) -> None:
        self.answer("github_api_url", "GitHub API URL (Enterprise: https://HOST/api/v3)")
        token = self.opts.github_token
        stored = read_secrets(Path(self.value("data_dir")).expanduser(),
                              self.key_path()).get("github_token")
        for _ in range(MAX_TRIES):
            if token is None and self.opts.interactive:
                hint = "Enter keeps the stored one" if stored else "blank: none"
                token = self.ui.ask(f"GitHub token ({hint})", "", hide=True).strip() or None
            if token is None:
                return
            if self.checked(check_github(token, self.value("github_api_url"))):
                self.opts.github_token, self.result.token_saved = token, True
                return
            token = None
        raise InitError(self.result.checks[-1])

    def ask_aws(self) -> None:
        for attempt in range(MAX_TRIES):
            if attempt:
                self.opts.aws_region = self.opts.aws_profile = None
            self.answer("aws_region", "AWS region (blank: no AWS)")
            self.answer("aws_profile", "AWS profile (blank: default credentials)")
            region, profile = self.value("aws_region"), self.value("aws_profile")
            if not region and not profile:
                return
            if self.checked(check_aws(region, profile, self.opts.aws_endpoint_url)):
                return
        raise InitError(self.result.checks[-1])

    def ask_pipeline(self, data_dir: Path) -> None:
        name = self.opts.pipeline
        if name is None and self.opts.interactive:
            name = self.ui.ask("First pipeline name (blank: skip)", "").strip() or None
        if name is None:
            return
        store = Store(data_dir / "seamless.db")
        try:
            self._save_pipeline(store, name)
        finally:
            store.close()
        self.result.pipeline = name

    def _save_pipeline(self, store: Store, name: str) -> None:
        try:
            existing: PipelineConfig | None = store.get_pipeline(name)
        except NotFound:
            existing = None
        update: dict[str, Any] = {}
        for env in ("staging", "production"):
            target = self.target(name, env, existing)
            if target is not None:
                update[env] = target
        if existing is None:
            store.create_pipeline(PipelineConfig(name=name, **update))
            self.ui.say(f"✓ pipeline {name} created")
        elif update:
            fields = PipelineConfig.model_fields
            config = PipelineConfig(**existing.model_dump(include=set(fields)))
            store.update_pipeline(name, config.model_copy(update=update))
            self.ui.say(f"✓ pipeline {name} updated ({', '.join(update)})")

    def target(self, pipeline: str, env: str,
               existing: PipelineConfig | None) -> DockerTargetConfig | EcsTargetConfig | \
            NoTargetConfig | None:
        kind = getattr(self.opts, f"{env}_target")
        cluster = getattr(self.opts, f"{env}_cluster")
        old = getattr(existing, env) if existing else None
        if kind is None and self.opts.interactive:
            kind = self.ui.ask(f"{env.capitalize()} deploy target ({' | '.join(TARGET_KINDS)})",
                               old.kind if old else "docker").strip()
            if kind == "ecs" and cluster is None:
                default = old.cluster if isinstance(old, EcsTargetConfig) else \
                    f"{pipeline}-{env}"
                cluster = self.ui.ask(f"{env.capitalize()} ECS cluster", default).strip()
        if kind is None and cluster is not None and isinstance(old, EcsTargetConfig):
            kind = "ecs"
        if kind is None or (old is not None and kind == old.kind and cluster is None):
            return None  # unchanged
        if kind not in TARGET_KINDS:
            raise InitError(Check(False, f"unknown {env} target {kind!r}",
                                  f"use one of {', '.join(TARGET_KINDS)}"))
        if kind == "ecs":
            return EcsTargetConfig(cluster=cluster or f"{pipeline}-{env}",
                                   region=self.value("aws_region") or "us-east-1",
                                   endpoint_url=self.opts.aws_endpoint_url)
        return DockerTargetConfig() if kind == "docker" else NoTargetConfig()
