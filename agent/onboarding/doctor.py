"""`seamless-agent service doctor NAME`: is the service's GitHub webhook healthy?

Reads the hook's configuration and its recent deliveries from GitHub and reports the
failed ones with GitHub's record of what this agent answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config import AgentConfig
from agent.github_api import WEBHOOK_EVENTS, Delivery, GitHubClient, GitHubError
from agent.onboarding.hooks import HookOutcome, github_target, hook_key, webhook_url
from store.store import Store

MAX_RESPONSE_CHARS = 500


@dataclass
class DoctorReport:
    service: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    failed: list[Delivery] = field(default_factory=list)  # with GitHub's response filled in

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failed


def diagnose(config: AgentConfig, store: Store, name: str, limit: int = 20) -> DoctorReport:
    service = store.get_service(name)
    report = DoctorReport(name)
    target = github_target(config, service)
    if isinstance(target, HookOutcome):
        report.problems.append(target.message)
        return report
    token, owner, repo = target
    stored = store.get_setting(hook_key(name))
    if not stored:
        report.problems.append(f"no webhook recorded for {name}: re-create the service or add"
                               f" one on {owner}/{repo} pointing at {webhook_url(config)}")
        return report
    hook_id = int(stored)
    try:
        with GitHubClient(token, config.github_api_url) as gh:
            _check_hook(report, gh.get_hook(owner, repo, hook_id), config)
            report.deliveries = gh.list_deliveries(owner, repo, hook_id, per_page=limit)
            for summary in report.deliveries:
                if summary.failed:
                    report.failed.append(gh.get_delivery(owner, repo, hook_id, summary.id))
    except GitHubError as exc:
        report.problems.append(f"webhook {hook_id} on {owner}/{repo}: {exc}")
        return report
    if not report.deliveries:
        report.notes.append("GitHub has no recent deliveries for this hook")
    return report


def _check_hook(report: DoctorReport, hook: dict, config: AgentConfig) -> None:
    cfg = hook.get("config", {})
    expected = webhook_url(config)
    if expected and cfg.get("url") != expected:
        report.problems.append(f"hook posts to {cfg.get('url')}, but this agent listens at"
                               f" {expected}")
    if cfg.get("content_type") != "json":
        report.problems.append(f"hook content type is {cfg.get('content_type')!r}; set 'json'")
    missing = [e for e in WEBHOOK_EVENTS if e not in hook.get("events", [])]
    if missing:
        report.problems.append(f"hook does not send {', '.join(missing)} events")
    if not hook.get("active", False):
        report.problems.append("hook is inactive on GitHub")


def render(report: DoctorReport) -> str:
    lines = [f"service {report.service}:"]
    lines += [f"  problem: {p}" for p in report.problems]
    lines += [f"  note: {n}" for n in report.notes]
    if report.deliveries:
        lines.append(f"  {len(report.deliveries)} recent deliveries, {len(report.failed)} failed")
    for d in report.failed:
        payload = str(d.response.get("payload") or "")[:MAX_RESPONSE_CHARS]
        lines.append(f"  FAILED {d.delivered_at} {d.event} (delivery {d.guid}):"
                     f" {d.status} [{d.status_code}]")
        lines.append(f"    agent answered: {payload or '(empty body)'}")
    if report.ok:
        lines.append("  ok: webhook configured and recent deliveries succeeded")
    return "\n".join(lines)
