"""Notifications: run finished/failed, awaiting approval, deployed, rolled back → SNS, Slack."""

from agent.notify.notifier import Notifier

__all__ = ["Notifier"]
