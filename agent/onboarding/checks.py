"""Each init answer checked on the spot: what is wrong, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

from agent.github_api import DEFAULT_API_URL, GitHubClient, GitHubError


@dataclass
class Check:
    ok: bool
    message: str
    fix: str = ""
    warning: bool = False  # ok, but the user should read the message

    def __str__(self) -> str:
        return self.message + (f"\n  fix: {self.fix}" if self.fix else "")


def check_docker(docker_host: str | None) -> Check:
    from agent.docker_client import engine_client

    where = docker_host or "the local engine (DOCKER_HOST or /var/run/docker.sock)"
    try:
        client = engine_client(docker_host, 5)
        try:
            version = client.version().get("Version", "?")
        finally:
            client.close()
    except Exception as exc:  # DockerException, requests errors: all mean "not reachable"
        text = str(exc)
        fix = ("start it (`systemctl start docker`) and make sure this user may use the socket"
               " (`usermod -aG docker $USER`, then log in again)")
        if "Permission denied" in text:
            fix = "add this user to the docker group (`usermod -aG docker $USER`), log in again"
        elif docker_host:
            fix = f"check --docker-host {docker_host} (e.g. unix:///var/run/docker.sock)"
        return Check(False, f"Docker engine not reachable at {where}: {text}", fix)
    return Check(True, f"Docker engine {version} reachable at {where}")


def check_github(token: str, api_url: str = DEFAULT_API_URL) -> Check:
    try:
        with GitHubClient(token, api_url) as gh:
            result = gh.check_token()
    except GitHubError as exc:
        fix = exc.hint or "check the token and the GitHub API URL"
        if exc.status == 401:
            fix = ("create a token at https://github.com/settings/tokens (classic: scopes"
                   " 'repo' and 'admin:repo_hook') and paste it again")
        return Check(False, f"GitHub token rejected by {api_url}: {exc.message}", fix)
    if result.can_manage_hooks is False:
        return Check(False, f"GitHub token of {result.login} cannot create webhooks",
                     result.advice)
    if result.can_manage_hooks is None:
        return Check(True, f"GitHub token of {result.login} ({result.kind}); {result.advice}",
                     warning=True)
    scopes = ", ".join(result.scopes or [])
    return Check(True, f"GitHub token of {result.login} with scopes {scopes}")


def check_aws(region: str | None, profile: str | None, endpoint_url: str | None = None) -> Check:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        sts = session.client("sts", endpoint_url=endpoint_url)
        identity = sts.get_caller_identity()
    except ProfileNotFound:
        return Check(False, f"AWS profile {profile!r} not found",
                     f"create it with `aws configure --profile {profile}` or pick another one")
    except NoCredentialsError:
        return Check(False, "no AWS credentials found (environment, profile or instance role)",
                     "run `aws configure`, pass --aws-profile, or attach an IAM role to this host")
    except ClientError as exc:
        err = exc.response.get("Error", {})
        return Check(False, f"AWS rejected the credentials: {err.get('Code')}: "
                     f"{err.get('Message')}",
                     "the keys are wrong or expired: refresh them (`aws configure`, `aws sso"
                     " login`) or choose another --aws-profile")
    except BotoCoreError as exc:
        return Check(False, f"AWS STS not reachable: {exc}",
                     "check --aws-region and the network (STS must be reachable)")
    return Check(True, f"AWS account {identity['Account']} as {identity['Arn']}"
                 f" in {session.region_name or '(no region)'}")
