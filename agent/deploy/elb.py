"""An AWS Application Load Balancer as the canary's traffic split (ECS targets).

The listener's default action forwards to the two colours' target groups with weights
(`ForwardConfig.TargetGroups[].Weight`); a step is one `modify_listener`. A window is
judged on what AWS reports, in this order:

1. a configured CloudWatch alarm in ALARM fails the step (the alarm is where a team
   already says what "bad" means: latency, 5xx, a business metric);
2. a canary target `unhealthy` in its target group fails it; no healthy canary target
   (none registered yet, all `initial`/`draining`) is inconclusive;
3. an alarm with INSUFFICIENT_DATA is inconclusive (no data never passes);
4. the Docker front's rules (`canary.judge`) on the target groups' CloudWatch metrics
   over the window: `RequestCount`, `HTTPCode_Target_5XX_Count` +
   `TargetConnectionErrorCount`, and `TargetResponseTime` p50/p95 where CloudWatch
   reports percentiles (too few requests: inconclusive, as on a Docker host).

ALB metrics are published per minute, a minute or two late: on real AWS a bake shorter
than a few minutes judges partly empty windows (inconclusive, so it holds; it never
passes on missing data).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.deploy.base import DeployError
from agent.deploy.canary import Figures, Verdict, judge
from store.models import CanaryConfig, EcsLoadBalancerConfig

NAMESPACE = "AWS/ApplicationELB"
ERROR_METRICS = ("HTTPCode_Target_5XX_Count", "TargetConnectionErrorCount")


def arn_suffix(arn: str) -> str:
    """The CloudWatch dimension value of an ELB ARN: `targetgroup/<name>/<id>`,
    `app/<name>/<id>` (a listener ARN gives its load balancer's)."""
    resource = arn.split(":", 5)[-1]
    if resource.startswith("listener/"):
        return "/".join(resource.split("/")[1:4])
    return resource


class ElbSplit:
    """The TrafficSplit of an ECS service pair: weights on a listener, figures from
    CloudWatch and target health."""

    def __init__(self, config: EcsLoadBalancerConfig, elbv2: Any, cloudwatch: Any) -> None:
        self.config = config
        self.check_interval_s = config.check_interval_s
        self.elbv2, self.cloudwatch = elbv2, cloudwatch
        self.groups = {"blue": config.blue_target_group_arn,
                       "green": config.green_target_group_arn}

    # -- weights ------------------------------------------------------------------------
    def apply(self, weights: dict[str, int]) -> None:
        """One modify_listener: every target group of the pair, the unnamed ones at 0."""
        groups = [{"TargetGroupArn": arn, "Weight": int(weights.get(colour, 0))}
                  for colour, arn in self.groups.items()]
        self.elbv2.modify_listener(ListenerArn=self.config.listener_arn, DefaultActions=[{
            "Type": "forward", "ForwardConfig": {"TargetGroups": groups}}])

    def weights(self) -> dict[str, int]:
        """The listener's weight per colour (a plain forward to one group is all of it)."""
        listener = self.elbv2.describe_listeners(
            ListenerArns=[self.config.listener_arn])["Listeners"][0]
        by_arn: dict[str, int] = {}
        for action in listener.get("DefaultActions", []):
            if action.get("Type") != "forward":
                continue
            forward = action.get("ForwardConfig", {}).get("TargetGroups")
            if forward:
                by_arn.update({g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in forward})
            elif action.get("TargetGroupArn"):
                by_arn[action["TargetGroupArn"]] = 100
        return {colour: by_arn.get(arn, 0) for colour, arn in self.groups.items()}

    def check_alarms_exist(self) -> None:
        names = self.config.alarm_names
        if not names:
            return
        found = {a["AlarmName"] for a in self.cloudwatch.describe_alarms(
            AlarmNames=names)["MetricAlarms"]}
        missing = [n for n in names if n not in found]
        if missing:
            raise DeployError(f"CloudWatch alarm(s) {', '.join(missing)} not found"
                              " (load_balancer.alarm_names)")

    # -- target health ------------------------------------------------------------------
    def target_health(self, colour: str) -> dict[str, list[str]]:
        """State → the targets in it (`Id:Port (reason)`), of the colour's target group."""
        states: dict[str, list[str]] = {}
        for t in self.elbv2.describe_target_health(
                TargetGroupArn=self.groups[colour])["TargetHealthDescriptions"]:
            health = t.get("TargetHealth", {})
            reason = health.get("Reason")
            label = f"{t['Target']['Id']}:{t['Target'].get('Port')}"
            states.setdefault(health.get("State", "unknown"), []).append(
                f"{label} ({reason})" if reason else label)
        return states

    # -- one window ---------------------------------------------------------------------
    def start_window(self) -> None:
        return None  # CloudWatch sums any window; nothing to remember

    def measure(self, start: None, since: float, until: float) -> dict[str, Figures]:
        return {colour: self._figures(colour, since, until) for colour in self.groups}

    def _figures(self, colour: str, since: float, until: float) -> Figures:
        dims = [{"Name": "TargetGroup", "Value": arn_suffix(self.groups[colour])},
                {"Name": "LoadBalancer", "Value": arn_suffix(self.config.listener_arn)}]
        # CloudWatch wants whole seconds and start < end.
        start = datetime.fromtimestamp(int(since), UTC)
        end = datetime.fromtimestamp(max(int(until) + 1, int(since) + 1), UTC)

        def stats(metric: str, **kw: Any) -> list[dict[str, Any]]:
            points: list[dict[str, Any]] = self.cloudwatch.get_metric_statistics(
                Namespace=NAMESPACE, MetricName=metric, Dimensions=dims, StartTime=start,
                EndTime=end, Period=60, **kw)["Datapoints"]
            return points

        requests = sum(p.get("Sum", 0) for p in stats("RequestCount", Statistics=["Sum"]))
        errors = sum(p.get("Sum", 0) for m in ERROR_METRICS
                     for p in stats(m, Statistics=["Sum"]))
        # GetMetricStatistics takes Statistics or ExtendedStatistics, never both.
        samples = int(sum(p.get("SampleCount", 0) for p in stats(
            "TargetResponseTime", Statistics=["SampleCount"])))
        times = stats("TargetResponseTime", ExtendedStatistics=["p50", "p95"])
        # A window spanning several periods: the worst period's percentile speaks.
        p50s = [p["ExtendedStatistics"]["p50"] for p in times
                if "p50" in p.get("ExtendedStatistics", {})]
        p95s = [p["ExtendedStatistics"]["p95"] for p in times
                if "p95" in p.get("ExtendedStatistics", {})]
        return Figures(colour, int(requests), int(errors), samples,
                       max(p50s) * 1000 if p50s else None, max(p95s) * 1000 if p95s else None)

    def verdict(self, canary: Figures, stable: Figures, cfg: CanaryConfig) -> Verdict:
        alarms = self._alarms()
        firing = [a for a in alarms if a["StateValue"] == "ALARM"]
        if firing:
            a = firing[0]
            return Verdict("fail", f"CloudWatch alarm {a['AlarmName']} is in ALARM:"
                                   f" {a.get('StateReason', '')}".rstrip(": "))
        health = self.target_health(canary.colour)
        if health.get("unhealthy"):
            bad, total = len(health["unhealthy"]), sum(len(v) for v in health.values())
            return Verdict("fail", f"{bad} of {total} canary targets unhealthy:"
                                   f" {', '.join(health['unhealthy'][:3])}")
        if not health.get("healthy"):
            seen = ", ".join(f"{len(v)} {k}" for k, v in sorted(health.items())) or "none"
            return Verdict("inconclusive", f"no healthy canary target ({seen})")
        unknown = [a for a in alarms if a["StateValue"] == "INSUFFICIENT_DATA"]
        if unknown:
            return Verdict("inconclusive", f"CloudWatch alarm {unknown[0]['AlarmName']}"
                                           " has insufficient data")
        return judge(canary, stable, cfg, times_required=False)

    def _alarms(self) -> list[dict[str, Any]]:
        if not self.config.alarm_names:
            return []
        alarms: list[dict[str, Any]] = self.cloudwatch.describe_alarms(
            AlarmNames=self.config.alarm_names)["MetricAlarms"]
        return alarms
