"""Run view actions against the real agent: rerun from a stage, refusals, the palette."""

from __future__ import annotations

from pathlib import Path

import httpx
from textual.command import CommandPalette

from seamless_tui.screens.dashboard import DashboardScreen
from seamless_tui.screens.run import RunScreen, StageList
from seamless_tui.widgets.log_view import LogView
from store.models import Role
from tests.harness import wait_until
from tests.sample_repo import git
from tests.tui.conftest import LiveAgent, wait_for
from tests.tui.textdump import screen_text


async def _run_screen(app, pilot, run_id: int) -> RunScreen:
    await wait_for(pilot, lambda: app.connection_state == "connected", "the event stream")
    app.open_run(run_id)
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run,
                   "the run")
    return app.screen


async def test_rerun_from_the_selected_stage_starts_a_new_run(live_agent: LiveAgent):
    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app(role=Role.deployer)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _run_screen(app, pilot, run_id)
        stages = screen.query_one(StageList)
        stages.focus()
        stages.highlighted = 2  # Unit Test, the stage that failed
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.run_id != run_id, "the new run's view")
        assert isinstance(app.screen, RunScreen)
        new_id = app.screen.run_id
    with live_agent.http() as http:
        new = http.get(f"/api/v1/runs/{new_id}").json()
    assert new["rerun_of"] == run_id and new["rerun_from_stage"] == "Unit Test"


async def test_cancel_of_a_finished_run_is_refused_with_a_message(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _run_screen(app, pilot, live_agent.seeded.runs["catalog"])
        await pilot.press("c")
        assert any("already finished" in n.message for n in app._notifications)


async def test_viewer_rerun_is_refused_with_a_clear_message(live_agent: LiveAgent):
    app = live_agent.app(role=Role.viewer)
    async with app.run_test(size=(80, 24)) as pilot:
        await _run_screen(app, pilot, live_agent.seeded.runs["checkout"])
        await pilot.press("R")
        await wait_for(pilot, lambda: any("may not rerun" in n.message
                                          for n in app._notifications), "the refusal")
        assert isinstance(app.screen, RunScreen)


async def test_command_palette_lists_the_screen_actions_and_runs_them(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"sort")
        await wait_for(pilot, lambda: "Sort" in screen_text(app), "the Sort command")
        await pilot.press("enter")
        await wait_for(pilot, lambda: dashboard.sort_key == "status", "sorted by status")


async def test_no_color_still_shows_status_by_icon_and_word(live_agent: LiveAgent,
                                                             monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await pilot.pause()
        assert app.no_color
        text = screen_text(app)
        assert "✗ failed" in text and "◆ approval" in text and "✓✓✗" in text


async def test_choosing_another_stage_focuses_its_mounted_log_and_keys_keep_working(
        live_agent: LiveAgent):
    # The README journey that froze a real terminal: G, l, k, k, enter from the dashboard.
    app = live_agent.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await pilot.press("G", "l")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run
                       and app.screen.query(LogView), "the run view")
        for _ in range(3):  # switch stages repeatedly: each switch must land on a live pane
            await pilot.press("k", "k", "enter")
            await wait_for(pilot, lambda: isinstance(app.focused, LogView), "the log focused")
            view = app.focused
            assert isinstance(view, LogView)
            assert view.is_attached and view in app.screen.query(LogView)
            assert len(app.screen.query(LogView)) == 1
            await pilot.press("tab")
            await wait_for(pilot, lambda: isinstance(app.focused, StageList), "the stage list")
        assert isinstance(app.screen, RunScreen)
        stage = app.screen.stage
        await wait_for(pilot, lambda: app.screen.query_one(LogView).stage == stage
                       and app.screen.query_one(LogView).loaded_once, "the chosen stage's log")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunScreen), "back to the list")


async def test_a_log_view_removed_by_a_stage_switch_lets_go_of_its_lines_at_once(
        live_agent: LiveAgent):
    # The removed view object can live on for ~20 s (asyncio keeps its stream's cancelled
    # timers, which hold the worker, which holds the view): what it held must not (in a flood,
    # 10,000 lines and their rendered rows per switch, rescanned by every full GC pass).
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _run_screen(app, pilot, live_agent.seeded.runs["checkout"])
        old = screen.query_one(LogView)
        await wait_for(pilot, lambda: len(old.window) == 60 and old._cache, "a painted log")
        stages = screen.query_one(StageList)
        stages.focus()
        await pilot.press("k", "enter")
        await wait_for(pilot, lambda: isinstance(app.focused, LogView) and app.focused is not old
                       and len(app.focused.window) == 60, "the other stage's log")
        assert not old.is_attached
        assert len(old.window) == 0 and not old.window.pending and not old._cache


async def test_rerun_from_with_no_stage_picked_reruns_the_stage_shown_and_follows_it(
        live_agent: LiveAgent):
    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app(role=Role.deployer)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _run_screen(app, pilot, run_id)
        assert screen.stage == "Unit Test"  # the failed stage is shown
        screen.query_one(StageList).highlighted = None
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen)
                       and app.screen.run_id != run_id and app.screen.run, "the new run")
        new = app.screen
        assert isinstance(new, RunScreen)
        # The new run's log pane is on the stage that runs again, not on a reused one.
        # The rerun runs for real (a local executor): under load its stages take a while.
        await wait_for(pilot, lambda: new.stage == "Unit Test", "the rerun stage's log",
                       timeout=30)
        await wait_for(pilot, lambda: "↺" in screen_text(app), "the reused marks", timeout=30)
        lines = [ln[:32] for ln in screen_text(app).splitlines() if "↺" in ln[:32]]
        assert any("Prepare" in ln for ln in lines) and any("Code Quality" in ln for ln in lines)
        assert not any("Unit Test" in ln for ln in lines)
        assert "rerun from Unit Test" in screen_text(app)


async def test_commit_link_is_shown_and_put_on_the_clipboard(live_agent: LiveAgent):
    app = live_agent.app()
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign,assignment]
    async with app.run_test(size=(100, 30)) as pilot:
        await _run_screen(app, pilot, live_agent.seeded.runs["checkout"])
        await pilot.press("o")
        await wait_for(pilot, lambda: copied, "the clipboard")
    assert copied == ["https://git.example.com/acme/checkout/commit/aaaa201" + "0" * 33]
    assert any(copied[0] in n.message for n in app._notifications)


async def test_the_run_page_link_is_shown_copied_and_opens_the_page(live_agent: LiveAgent):
    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app(role=Role.viewer)
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign,assignment]
    async with app.run_test(size=(100, 30)) as pilot:
        await _run_screen(app, pilot, run_id)
        await pilot.press("L")
        await wait_for(pilot, lambda: copied, "the clipboard")
    assert copied[0].startswith(f"{live_agent.url}/runs/{run_id}?exp=")
    assert any(copied[0] in n.message for n in app._notifications)
    page = httpx.get(copied[0], timeout=10)  # no token: the signature opens it
    assert page.status_code == 200 and "checkout" in page.text


async def test_palette_lists_each_action_once_with_readable_names(live_agent: LiveAgent):
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _run_screen(app, pilot, live_agent.seeded.runs["checkout"])
        await wait_for(pilot, lambda: app.screen.query(LogView), "the log")
        await pilot.press("tab")
        await wait_for(pilot, lambda: isinstance(app.focused, LogView), "the log focused")
        titles = [c.title for c in app.get_system_commands(app.screen)]
    assert len(titles) == len(set(titles)), titles
    assert titles.count("Quit") == 1
    for wanted in ("Log: search the whole stage log", "Rerun from the selected stage",
                   "Jump to a service or run (:payments, :payments#12, :#12)"):
        assert wanted in titles
    assert not any(t in ("Down", "Up", "End", "Error", "Stages/log") for t in titles)


async def test_the_same_refusal_three_times_gives_one_toast(live_agent: LiveAgent):
    app = live_agent.app(role=Role.viewer)
    async with app.run_test(size=(80, 24)) as pilot:
        await _run_screen(app, pilot, live_agent.seeded.runs["checkout"])
        for _ in range(3):
            await pilot.press("R")
            await pilot.pause(0.3)
        await wait_for(pilot, lambda: any("may not rerun" in n.message
                                          for n in app._notifications), "the refusal")
        await pilot.pause(0.5)
        assert sum("may not rerun" in n.message for n in app._notifications) == 1


async def test_palette_search_mark_is_a_plain_glyph(live_agent: LiveAgent):
    from textual.command import SearchIcon

    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(getattr(app.screen, "rows", {})) == 4, "overview")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        assert [icon.icon for icon in app.screen.query(SearchIcon)] == ["/"]


def _running_run(live_agent: LiveAgent, tmp_path: Path) -> dict:
    """A run of a service of its own whose Unit Test runs (local executor) until cancelled."""
    repo = tmp_path / "sleepy"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("sleeps\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=ana", "-c", "user.email=ana@example.com", "commit", "-q",
        "-m", "Sleep")
    with live_agent.http() as http:
        for path, body in (("/pipelines", {"name": "beta", "executor": "local",
                                           "staging": {"kind": "none"},
                                           "production": {"kind": "none"}}),
                           ("/services", {"name": "sleepy", "pipeline": "beta",
                                          "repo_url": str(repo),
                                          "unit_test_command": "sleep 120"})):
            assert http.post(f"/api/v1{path}", json=body).status_code == 201
        run = http.post("/api/v1/services/sleepy/trigger", json={}).json()
        wait_until(lambda: any(s["name"] == "Unit Test" and s["status"] == "in_progress"
                               for s in http.get(f"/api/v1/runs/{run['id']}").json()["stages"]),
                   timeout=60, what="the Unit Test running")
    return run  # type: ignore[no-any-return]


async def test_cancel_says_cancelling_until_the_run_has_ended_and_F_meanwhile_says_wait(
        live_agent: LiveAgent, tmp_path: Path):
    """The agent stops a running stage after it answers the cancel: the toast must not say
    `cancelled` before the run is (the tmux journey then pressed F too early and got the
    agent's "still running: cancel it first")."""
    run = _running_run(live_agent, tmp_path)
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _run_screen(app, pilot, run["id"])
        await pilot.press("c")
        await wait_for(pilot, lambda: app._notifications, "the cancel's answer")
        said = [n.message for n in app._notifications]
        assert said[0] == f"Cancelling run #{run['number']}: its stage is being stopped…", said
        await pilot.press("F")
        # Run not ended yet: F says so (not the agent's 409); ended: F asks to confirm. The
        # run's own "cancelled" toast may come first either way (seen under load).
        await wait_for(pilot, lambda: app.screen is not screen or any(
            "still being cancelled" in n.message for n in app._notifications), "F answered")
        await wait_for(pilot, lambda: any(n.message == f"Run #{run['number']} cancelled"
                                          for n in app._notifications) or app.screen
                       is not screen, "the run's end")
        said = [n.message for n in app._notifications]
    assert not any("cancel it first" in message for message in said), said


async def test_an_answer_older_than_the_end_of_the_run_does_not_bring_it_back_to_running(
        live_agent: LiveAgent, tmp_path: Path):
    """A GET answered while the run still ran can arrive after the event that said it
    ended (the tmux journey saw `● running` for good after a cancel)."""
    run = _running_run(live_agent, tmp_path)
    app = live_agent.app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _run_screen(app, pilot, run["id"])
        stale = screen.run
        assert stale is not None and not stale.status.finished
        with live_agent.http() as http:
            http.post(f"/api/v1/runs/{run['id']}/cancel")
        await wait_for(pilot, lambda: screen.run is not None and screen.run.status.finished,
                       "the run's end, from the agent's events")
        await screen.show_run(stale)  # the late answer
        await pilot.pause()
        assert screen.run is not None and screen.run.status.value == "cancelled"
        assert "running" not in screen_text(app).splitlines()[1]
        unit = next(s for s in screen.run.stages if s.name == "Unit Test")
        assert unit.status.finished
