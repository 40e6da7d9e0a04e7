"""Screens of the TUI. `ALL_SCREENS` lists every class with bindings (for keymap ids)."""

from __future__ import annotations


def _all() -> list[type]:
    from seamless_tui.screens.approval import ApprovalModal
    from seamless_tui.screens.canary import CanaryScreen
    from seamless_tui.screens.config_form import ConfigForm
    from seamless_tui.screens.confirm import ConfirmModal
    from seamless_tui.screens.dashboard import DashboardScreen
    from seamless_tui.screens.help import HelpScreen
    from seamless_tui.screens.jump import JumpModal
    from seamless_tui.screens.results import ReasonModal, TestsScreen
    from seamless_tui.screens.rollback import RollbackScreen
    from seamless_tui.screens.run import RunScreen, StageList
    from seamless_tui.screens.service import ServiceScreen
    from seamless_tui.widgets.log_pane import LogPane
    from seamless_tui.widgets.log_view import LogView
    from seamless_tui.widgets.tables import VimTable

    return [ApprovalModal, CanaryScreen, ConfigForm, ConfirmModal, DashboardScreen,
            HelpScreen, JumpModal, RollbackScreen, RunScreen, StageList, ServiceScreen, LogPane,
            LogView, VimTable, TestsScreen, ReasonModal]


def __getattr__(name: str) -> list[type]:
    if name == "ALL_SCREENS":
        return _all()
    raise AttributeError(name)
