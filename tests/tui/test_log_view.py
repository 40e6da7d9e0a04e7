"""The run view's log pane on a real agent: tail first, paging by cursor, bounded memory,
follow mode with the "+N new lines" marker, search and jump to the first error."""

from __future__ import annotations

from datetime import timedelta

from seamless_tui.screens.run import RunScreen
from seamless_tui.widgets.log_pane import NewLinesMarker
from seamless_tui.widgets.log_view import TAIL_PAGE, LogView
from store.models import Role
from store.store import Store
from tests.tui.conftest import LiveAgent, wait_for
from tests.tui.seed import FIXED_NOW, add_log

STAGE = "Unit Test"


def _add_big_log(live: LiveAgent, count: int = 5000) -> None:
    store = Store(live.tmp / "seamless.db")
    add_log(store, live.seeded.runs["checkout"], STAGE, count,
            start=FIXED_NOW + timedelta(minutes=1), text="big {i}")
    store.close()


def _requests_of(app) -> list[str]:  # type: ignore[no-untyped-def]
    """The last part of the path of each request the app sends to the agent from now on."""
    asked: list[str] = []
    request = app.client.request

    async def counted(method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(path.rsplit("/", 1)[-1])
        return await request(method, path, **kwargs)

    app.client.request = counted
    return asked


async def _open(app, pilot, run_id: int) -> LogView:
    app.open_run(run_id)
    await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.query(LogView)
                   and app.screen.query_one(LogView).loaded_once, "the log tail")
    view = app.screen.query_one(LogView)
    view.focus()
    await pilot.pause()
    return view


async def test_log_loads_the_tail_and_pages_older_lines_within_a_bounded_window(
        live_agent: LiveAgent):
    _add_big_log(live_agent)
    app = live_agent.app(max_log_lines=1500)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _open(app, pilot, live_agent.seeded.runs["checkout"])
        w = view.window
        assert len(w) == TAIL_PAGE and w.has_older  # a few screenfuls first
        assert w.lines[-1].text == "big 5000"
        assert view.follow

        for _ in range(110):  # page up through the log: older pages come in by cursor
            await pilot.press("pageup")
            await wait_for(pilot, lambda: view.fetching is None, "a page")
            assert len(w) <= 1500
        assert not view.follow
        assert w.lines[0].text.startswith("big ")
        assert int(w.lines[0].text.split()[1]) < 3001
        assert not w.at_live_end  # the newest lines were dropped to stay bounded

        await pilot.press("g")  # g = top, as in vim and less
        await wait_for(pilot, lambda: w.abs_start == 0 and view.scroll_offset.y == 0, "the top")
        assert w.lines[0].text == "checkout Unit Test 1" and not w.has_older

        await pilot.press("G")
        await wait_for(pilot, lambda: view.follow and w.lines[-1].text == "big 5000", "the end")
        assert view.scroll_offset.y == view._max_y()


async def test_follow_mode_pauses_on_scroll_up_and_the_marker_resumes_it(
        live_agent: LiveAgent):
    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        agent = live_agent.server.agent
        log = agent.logs.stage_log(run_id, STAGE, [])
        for i in range(30):
            log.write(f"live {i}")
        log.flush()
        await wait_for(pilot, lambda: len(view.window) == 90, "live lines")
        assert view.follow and view.scroll_offset.y == view._max_y()

        await pilot.press("k", "k")
        assert not view.follow
        for i in range(30, 40):
            log.write(f"live {i}")
        log.flush()
        marker = app.screen.query_one(NewLinesMarker)
        await wait_for(pilot, lambda: marker.has_class("visible"), "the +N marker")
        assert "+10 new lines" in str(marker.render())
        assert view.scroll_offset.y < view._max_y()

        await pilot.click(NewLinesMarker)
        await wait_for(pilot, lambda: view.follow and not marker.has_class("visible"),
                       "follow resumed")
        assert view.scroll_offset.y == view._max_y()
        assert view.window.lines[-1].text == "live 39"


async def test_search_and_first_error_work_on_the_loaded_lines(live_agent: LiveAgent):
    run_id = live_agent.seeded.runs["checkout"]
    store = Store(live_agent.tmp / "seamless.db")
    add_log(store, run_id, STAGE, 1, start=FIXED_NOW + timedelta(minutes=2),
            text="\x1b[31mError\x1b[0m: boom\x1b[2J\x1b[H\x1b]0;pwned\x07 done")
    add_log(store, run_id, STAGE, 5, start=FIXED_NOW + timedelta(minutes=3), text="tail {i}")
    store.close()
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        await pilot.press("e")
        await wait_for(pilot, lambda: view.match_line == 60, "the first error")
        error = view.window.lines[60].clean
        assert error == "\x1b[31mError\x1b[0m: boom done"  # colour kept, screen tricks gone
        assert not view.follow

        def matched() -> str:
            return view.window.lines[view.match_line].text if view.match_line is not None \
                and view.match_line >= 0 else ""

        await pilot.press("slash", *"test 1", "enter")
        await wait_for(pilot, lambda: matched() == "checkout Unit Test 1", "the first match")
        await pilot.press("n")
        await wait_for(pilot, lambda: matched() == "checkout Unit Test 10", "the next one")
        await pilot.press("N")
        await wait_for(pilot, lambda: matched() == "checkout Unit Test 1", "back")


async def test_wrap_timestamps_and_line_numbers_toggles(live_agent: LiveAgent):
    from tests.tui.textdump import screen_text

    run_id = live_agent.seeded.runs["checkout"]
    store = Store(live_agent.tmp / "seamless.db")
    add_log(store, run_id, STAGE, 1, start=FIXED_NOW + timedelta(minutes=4),
            text="long " + "x" * 150 + " END")
    store.close()
    app = live_agent.app()
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        assert view.total_rows() == 61 and "END" not in screen_text(app)
        await pilot.press("w")
        assert view.wrap and view.total_rows() > 61
        assert view.line_at_row(view.total_rows() - 1) == (60, view.total_rows() - 61)
        await pilot.pause()
        assert "END" in screen_text(app), screen_text(app)
        await pilot.press("w", "t", "#")
        await pilot.pause()
        text = screen_text(app)
        assert "12:00:00.059" in text  # the 60th seeded line's time, millisecond precision
        assert "60 " in text and "61 " in text  # absolute line numbers in the gutter


async def test_search_covers_the_whole_log_with_a_counter_and_pages_to_each_match(
        live_agent: LiveAgent, tmp_path, monkeypatch):
    from seamless_tui.widgets.log_pane import LogPane
    from tests.tui.textdump import screen_text

    _add_big_log(live_agent)  # 60 seeded lines, then "big 1" … "big 5000"
    app = live_agent.app(max_log_lines=1500)
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, live_agent.seeded.runs["checkout"])
        assert view.window.lines[0].text == "big 4801"  # "big 4" is far above the window

        def matched() -> str:
            return view.window.lines[view.match_line].text if view.match_line is not None \
                and 0 <= view.match_line < len(view.window) else ""

        await pilot.press("slash", *"big 4", "enter")
        await wait_for(pilot, lambda: matched() == "big 4", "the first match, loaded")
        # 4, 40-49, 400-499, 4000-4999: 1,111 matches in the whole log, not the window's.
        await wait_for(pilot, lambda: "match 1 / 1,111 (line 64)" in screen_text(app),
                       "the counter")
        assert view.window.abs_start is not None and view.window.abs_start < 63
        await pilot.press("n")
        await wait_for(pilot, lambda: matched() == "big 40", "the next match")
        await pilot.press("N", "N")  # before the first: wraps to the last
        await wait_for(pilot, lambda: matched() == "big 4999", "the last match")
        await wait_for(pilot, lambda: "match 1,111 / 1,111" in screen_text(app), "counter")
        assert isinstance(view.parent, LogPane)

        copied: list[str] = []
        app.copy_to_clipboard = copied.append  # type: ignore[method-assign,assignment]
        await pilot.press("y")
        assert copied == ["big 4999"]

        monkeypatch.chdir(tmp_path)
        await pilot.press("s")
        saved = tmp_path / f"seamless-run{view.run_id}-unit-test.log"
        await wait_for(pilot, lambda: any("lines saved" in n.message
                                          for n in app._notifications), "the save")
        lines = saved.read_text().splitlines()
        assert len(lines) == 5060 and lines[0] == "checkout Unit Test 1"
        assert lines[-1] == "big 5000"


async def test_a_far_match_comes_with_its_lines_and_N_goes_to_the_match_just_before(
        live_agent: LiveAgent, monkeypatch):
    """The first match, far above the window, is shown from the search's own answer (no
    second request for its lines); `N` past the start of a page of matches goes to the
    match just before, not to the start of the page before."""
    from seamless_tui.widgets import log_search

    monkeypatch.setattr(log_search, "MATCH_PAGE", 3)  # pages of 3 matches: N crosses them
    _add_big_log(live_agent)
    app = live_agent.app(max_log_lines=1500)
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, live_agent.seeded.runs["checkout"])
        asked = _requests_of(app)

        def matched() -> str:
            return view.window.lines[view.match_line].text if view.match_line is not None \
                and 0 <= view.match_line < len(view.window) else ""

        await pilot.press("slash", *"big 4", "enter")
        await wait_for(pilot, lambda: matched() == "big 4", "the first match")
        assert asked == ["search"]
        # Wrap back to the last match (4999), then back through its page (4998, 4997) and
        # across into the page before: 4996.
        for expected in ("big 4999", "big 4998", "big 4997", "big 4996"):
            def shown(want: str = expected) -> bool:
                return matched() == want

            await pilot.press("N")
            await wait_for(pilot, shown, expected)
        assert "log" not in asked  # every match came with its lines


async def test_first_error_of_a_log_loaded_from_its_first_line_needs_no_round_trip(
        live_agent: LiveAgent):
    """`e` on a log the view holds from its first line is found in the view (the same line
    the agent finds); on a longer log it is the agent's answer."""
    run_id = live_agent.seeded.runs["checkout"]
    store = Store(live_agent.tmp / "seamless.db")
    add_log(store, run_id, STAGE, 1, start=FIXED_NOW + timedelta(minutes=2),
            text="E: tests FAILED")  # "FAILED": ASCII case-insensitive, as the agent's LIKE
    store.close()
    with live_agent.http(Role.viewer) as http:
        agent_says = http.get(f"/api/v1/runs/{run_id}/logs/first-error",
                              params={"stage": STAGE}).json()["line"]
    app = live_agent.app()
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        assert view.window.abs_start == 0 and not view.window.has_older
        asked = _requests_of(app)
        await pilot.press("e")
        await wait_for(pilot, lambda: view.match_line is not None, "the first error")
        assert view.window.lines[view.match_line or 0].id == agent_says["id"]
        assert asked == []

    _add_big_log(live_agent)  # now the view holds only the log's last lines
    app = live_agent.app(max_log_lines=1500)
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        await pilot.press("e")
        await wait_for(pilot, lambda: view.match_line is not None, "the agent's answer")
        assert view.window.lines[view.match_line or 0].id == agent_says["id"]


async def test_long_lines_show_where_they_go_on_and_split_pieces_say_so(
        live_agent: LiveAgent):
    from seamless_tui.widgets.log_render import MORE, SPLIT_MARK
    from tests.tui.textdump import screen_text

    run_id = live_agent.seeded.runs["checkout"]
    store = Store(live_agent.tmp / "seamless.db")
    add_log(store, run_id, STAGE, 1, start=FIXED_NOW + timedelta(minutes=2),
            text="wide " + "x" * 300)
    add_log(store, run_id, STAGE, 1, start=FIXED_NOW + timedelta(minutes=3),
            text="y" * (64 * 1024))  # what the agent stores for a longer line's first piece
    store.close()
    app = live_agent.app()
    async with app.run_test(size=(100, 24)) as pilot:
        await _open(app, pilot, run_id)

        def shows(mark: str) -> bool:  # the page is loaded; its repaint may come later
            return any(mark in r and r.rstrip().endswith(MORE)
                       for r in screen_text(app).splitlines())

        await wait_for(pilot, lambda: shows("wide xxx"), "the wide line, cut with a mark")
        await wait_for(pilot, lambda: shows(SPLIT_MARK), "the split piece, marked")


async def test_v_marks_lines_j_extends_y_copies_them_and_says_how_many(live_agent: LiveAgent):
    from tests.tui.textdump import screen_text

    _add_big_log(live_agent, count=200)
    app = live_agent.app()
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, live_agent.seeded.runs["checkout"])
        copied: list[str] = []
        app.copy_to_clipboard = copied.append  # type: ignore[method-assign,assignment]
        await pilot.press("g")  # the top: "checkout Unit Test 1"
        await wait_for(pilot, lambda: view.scroll_offset.y == 0, "the top")
        await pilot.press("v")
        await wait_for(pilot, lambda: "1 line marked" in screen_text(app), "marking")
        # Past the bottom of the view: the view scrolls with the marked end.
        await pilot.press(*"j" * 24)
        await wait_for(pilot, lambda: "25 lines marked" in screen_text(app), "25 marked")
        assert view.scroll_offset.y > 0
        await pilot.press("k")
        await wait_for(pilot, lambda: "24 lines marked" in screen_text(app), "24 marked")
        await pilot.press("y")
        await wait_for(pilot, lambda: "copied 24 lines" in screen_text(app), "said so")
        assert copied == ["\n".join(f"checkout Unit Test {i}" for i in range(1, 25))]
        assert not view.marking
        # Escape stops marking without leaving the run; with nothing marked it goes back.
        await pilot.press("v", "j", "escape")
        await wait_for(pilot, lambda: "marking stopped" in screen_text(app), "stopped")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunScreen), "back")


async def test_first_error_is_found_in_the_whole_log_not_only_the_loaded_lines(
        live_agent: LiveAgent):
    """The error sits 4,000 lines above the loaded tail: `e` asks the agent, which finds
    it (the line the run page marks), and the view loads the lines around it."""
    run_id = live_agent.seeded.runs["checkout"]
    store = Store(live_agent.tmp / "seamless.db")
    add_log(store, run_id, STAGE, 1, start=FIXED_NOW + timedelta(minutes=2),
            text="FAILED tests/test_refunds.py::test_refund - AssertionError")
    add_log(store, run_id, STAGE, 4000, start=FIXED_NOW + timedelta(minutes=3),
            text="passing {i}")
    store.close()
    app = live_agent.app(max_log_lines=1500)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        assert not any("FAILED" in ln.text for ln in view.window.lines)
        await pilot.press("e")

        def shown() -> str:
            index = view.match_line
            return view.window.lines[index].text if index is not None and \
                0 <= index < len(view.window.lines) else ""

        await wait_for(pilot, lambda: shown().startswith("FAILED tests/test_refunds.py"),
                       "the first error, loaded from the agent")
        assert view.window.abs_start is not None
        assert view.match_line is not None
        assert view.window.abs_start + view.match_line + 1 == 61  # its line number
        assert not view.follow


async def test_first_error_says_so_when_the_stage_has_none(live_agent: LiveAgent):
    from tests.tui.textdump import screen_text

    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app()
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        top = view.scroll_offset.y
        await pilot.press("e")
        await wait_for(pilot, lambda: "no error line in this stage's log" in screen_text(app),
                       "the answer on the pane's status line")
        assert view.scroll_offset.y == top and view.follow


async def test_a_keys_answer_stays_on_the_status_line_while_lines_stream_in(
        live_agent: LiveAgent):
    """In a flood the status line is rewritten 4 times a second: `e`'s answer must not go
    with the next rewrite."""
    from tests.tui.textdump import screen_text

    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app()
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        await pilot.press("e")
        await wait_for(pilot, lambda: "no error line in this stage's log" in screen_text(app),
                       "the answer")
        for _ in range(3):  # what each flush of live lines posts
            view.post_message(LogView.Status(view))
            await pilot.pause()
        assert "no error line in this stage's log" in screen_text(app)


async def test_live_lines_arriving_while_a_search_is_on_its_way_wait_and_are_not_lost(
        live_agent: LiveAgent):
    """While a search is on its way the live lines wait (a flood's repaints came between the
    key and its answer); none is lost: once the match is shown they are counted as new."""
    import asyncio

    run_id = live_agent.seeded.runs["checkout"]
    app = live_agent.app()
    async with app.run_test(size=(100, 24)) as pilot:
        view = await _open(app, pilot, run_id)
        answer = asyncio.Event()
        search_log = app.client.search_log

        async def slow_search(*args, **kwargs):  # type: ignore[no-untyped-def]
            await answer.wait()
            return await search_log(*args, **kwargs)

        app.client.search_log = slow_search  # type: ignore[method-assign]
        await pilot.press("slash", *"Unit Test 3", "enter")
        last = view.window.last_id
        assert last is not None
        live = [{"id": "7" + last[1:], "ts": "2026-03-14T12:30:00+00:00", "stream": "stdout",
                 "text": "arrived during the search"}]
        view.add_live(live)
        await pilot.pause(0.5)  # two flood intervals: held
        assert view.window.last_id == last and view._incoming
        answer.set()
        await wait_for(pilot, lambda: view.match_line is not None, "the match")
        await wait_for(pilot, lambda: not view._incoming, "the held lines applied")
        assert view.window.last_id == live[0]["id"]
