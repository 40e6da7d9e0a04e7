"""CLI commands of onboarding, added to the main `seamless-agent` app by `register()`."""

from __future__ import annotations

from pathlib import Path

import typer

from agent.cli_client import typer_app
from agent.config import SYSTEM_CONFIG_PATH, SYSTEM_DATA_DIR, AgentConfig, load_config
from agent.onboarding.init import InitError, InitOptions, Wizard, default_config_path
from agent.onboarding.system_install import hand_over

ConfigOpt = typer.Option(None, "--config", "-c", help="agent config TOML"
                         " (default: $SEAMLESS_CONFIG or ~/.config/seamless/agent.toml)")


class TyperUi:
    def ask(self, question: str, default: str | None = None, hide: bool = False) -> str:
        return str(typer.prompt(question, default=default or "", show_default=bool(default),
                                hide_input=hide))

    def say(self, text: str, err: bool = False) -> None:
        typer.echo(text, err=err)


def _config(path: Path | None) -> AgentConfig:
    default = default_config_path()
    return load_config(path or (default if default.exists() else None))


def init(
    config: Path = typer.Option(None, "--config", "-c", help="where to write the config"),
    system: bool = typer.Option(
        False, "--system", help=f"for the systemd service: config {SYSTEM_CONFIG_PATH}, data "
        f"in {SYSTEM_DATA_DIR}, both usable by --user (run as root)"),
    user: str = typer.Option("seamless", help="the service's user (with --system)"),
    non_interactive: bool = typer.Option(False, "--non-interactive",
                                         help="never prompt; unanswered = unchanged"),
    data_dir: Path = typer.Option(None, help="SQLite, mirrors, workspaces, secrets"),
    host: str = typer.Option(None, help="API bind address"),
    port: int = typer.Option(None, help="API port"),
    public_url: str = typer.Option(None, help="URL GitHub reaches the agent at"),
    executor: str = typer.Option(None, help="auto | docker (local is a pipeline setting)"),
    docker_host: str = typer.Option(None, help="Docker engine URL (default: local socket)"),
    github_token: str = typer.Option(None, envvar="SEAMLESS_INIT_GITHUB_TOKEN",
                                     help="GitHub token (prefer the env var: flags show in ps)"),
    github_api_url: str = typer.Option(None, help="GitHub Enterprise: https://HOST/api/v3"),
    aws_region: str = typer.Option(None),
    aws_profile: str = typer.Option(None),
    aws_endpoint_url: str = typer.Option(None, hidden=True, help="AWS endpoint (tests: moto)"),
    pipeline: str = typer.Option(None, help="first pipeline's name"),
    staging_target: str = typer.Option(None, help="docker | ecs | none"),
    staging_cluster: str = typer.Option(None, help="ECS cluster for staging"),
    production_target: str = typer.Option(None, help="docker | ecs | none"),
    production_cluster: str = typer.Option(None, help="ECS cluster for production"),
) -> None:
    """First-run setup: answers checked as you go; re-running changes only what you change."""
    if system:
        config = config or SYSTEM_CONFIG_PATH
        if data_dir is None and not SYSTEM_CONFIG_PATH.exists():
            data_dir = SYSTEM_DATA_DIR
    opts = InitOptions(
        config_path=config or default_config_path(), interactive=not non_interactive,
        data_dir=data_dir, host=host, port=port, public_url=public_url, executor=executor,
        docker_host=docker_host, github_token=github_token, github_api_url=github_api_url,
        aws_region=aws_region, aws_profile=aws_profile, aws_endpoint_url=aws_endpoint_url,
        pipeline=pipeline, staging_target=staging_target, staging_cluster=staging_cluster,
        production_target=production_target, production_cluster=production_cluster)
    try:
        result = Wizard(opts, TyperUi()).run()
    except InitError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    changed = ", ".join(sorted(result.changed)) or "nothing"
    typer.echo(f"config {result.config_path}: changed {changed}"
               + ("; GitHub token saved (0600)" if result.token_saved else ""))
    if system:
        written = load_config(result.config_path, environ={})
        for warning in hand_over(user, result.config_path, written.data_dir):
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(f"next: seamless-agent install-service --user {user}"
                   + (f" --config {result.config_path}"
                      if result.config_path != SYSTEM_CONFIG_PATH else ""))


def env_provision(
    pipeline: str = typer.Option(..., "--pipeline", "-p"),
    env: str = typer.Option(..., "--env", "-e", help="staging | production"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
    service: list[str] = typer.Option(None, "--service", help="only these services"),
    cpu: int = typer.Option(None, help="task CPU units (default 256, or what is there)"),
    memory: int = typer.Option(None, help="task memory MiB (default 512, or what is there)"),
    desired_count: int = typer.Option(None, help="tasks per service (default 1)"),
    subnet: list[str] = typer.Option(None, "--subnet", help="default: the default VPC's"),
    security_group: list[str] = typer.Option(None, "--security-group"),
    assign_public_ip: bool = typer.Option(False, "--assign-public-ip"),
    execution_role_arn: str = typer.Option(None, help="lets tasks pull from ECR, write logs"),
    config: Path = ConfigOpt,
) -> None:
    """Create (idempotently) the cluster, namespace, task definitions and services."""
    from agent.onboarding.ecs_facts import SizeFlags
    from agent.onboarding.ecs_provision import Network, provision

    flags = SizeFlags(cpu=cpu, memory=memory, desired_count=desired_count)
    network = Network(subnets=subnet or [], security_groups=security_group or [],
                      assign_public_ip=assign_public_ip, execution_role_arn=execution_role_arn)
    _run_env(pipeline, env, service, config, dry_run, lambda session, p, services, store:
             provision(session, p, services, env, flags=flags, network=network,
                       dry_run=dry_run, store=store))


def env_teardown(
    pipeline: str = typer.Option(..., "--pipeline", "-p"),
    env: str = typer.Option(..., "--env", "-e", help="staging | production"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, change nothing"),
    service: list[str] = typer.Option(None, "--service", help="only these services"),
    config: Path = ConfigOpt,
) -> None:
    """Remove what `env provision` created (found by its tags) and nothing else."""
    from agent.onboarding.ecs_provision import teardown

    _run_env(pipeline, env, service, config, dry_run, lambda session, p, services, store:
             teardown(session, p, services, env, dry_run=dry_run))


def _run_env(pipeline: str, env: str, only: list[str] | None, config_path: Path | None,
             dry_run: bool, action) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from agent.onboarding.ecs_provision import ProvisionError
    from store.store import NotFound, Store

    if env not in ("staging", "production"):
        raise typer.BadParameter("must be staging or production", param_hint="--env")
    config = _config(config_path)
    store = Store(config.db_path)
    try:
        p = store.get_pipeline(pipeline)
        services = [s for s in store.list_services(pipeline) if not only or s.name in only]
        session = boto3.Session(profile_name=config.aws_profile, region_name=config.aws_region)
        steps = action(session, p, services, store)
    except (NotFound, ProvisionError, ClientError, BotoCoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    if dry_run:
        typer.echo("plan (dry run, nothing changed):")
    for step in steps:
        typer.echo(f"  {step}")
    if not steps:
        typer.echo(f"  no services in pipeline {pipeline}")


def service_doctor(name: str = typer.Argument(..., help="service name"),
                   config: Path = ConfigOpt) -> None:
    """Check the service's GitHub webhook and report failed recent deliveries."""
    from agent.onboarding.doctor import diagnose, render
    from store.store import NotFound, Store

    cfg = _config(config)
    store = Store(cfg.db_path)
    try:
        report = diagnose(cfg, store, name)
    except NotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    typer.echo(render(report))
    if not report.ok:
        raise typer.Exit(2)


def register(app: typer.Typer, service_app: typer.Typer) -> None:
    app.command("init")(init)
    env_app = typer_app("ECS environments for a pipeline (Fargate)")
    env_app.command("provision")(env_provision)
    env_app.command("teardown")(env_teardown)
    app.add_typer(env_app, name="env")
    service_app.command("doctor")(service_doctor)
