"""Search over a stage's whole log, on the agent (`/logs/search`, paged by ULID), for the
log view: a match counter (`3 / 1,922`), `n` / `N` across pages (wrapping at the ends),
and the view's window moved to a match that is not loaded. `e`: the stage's first error
line, also found by the agent over the whole log (`/logs/first-error`, the line the run
page marks). Also: save the whole log to a file, copy a line.

Mixed into LogView (it brings the window, the scrolling and `post_message`)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message

from seamless_tui.ansi import plain, sanitize
from seamless_tui.client import RawContext
from seamless_tui.services import services
from seamless_tui.widgets.log_window import make_line
from store.models import ERROR_WORDS, LogMatch

MATCH_PAGE = 100
AROUND = 500  # lines loaded on each side of a match outside the window
SAVE_PAGE = 10_000
LAST_ULID = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"  # sorts after every id: "before the end"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # ULID digits, in order
# The agent's test (SQLite's LIKE: ASCII case-insensitive), for the lines the view has.
READS_LIKE_AN_ERROR = re.compile("|".join(map(re.escape, ERROR_WORDS)),
                                 re.IGNORECASE | re.ASCII)


def ulid_before(ulid: str) -> str:
    """The greatest ULID below `ulid`: `after=` it pages from `ulid` itself, included."""
    digits = list(ulid)
    for i in range(len(digits) - 1, -1, -1):
        value = CROCKFORD.index(digits[i])
        if value:
            digits[i] = CROCKFORD[value - 1]
            return "".join(digits)
        digits[i] = CROCKFORD[-1]  # 0 - 1: borrow from the digit to the left
    raise ValueError(f"no ULID below {ulid}")


@dataclass
class SearchState:
    term: str
    total: int | None = None
    matches: list[LogMatch] = field(default_factory=list)  # a run of consecutive matches
    current: LogMatch | None = None


class SearchAnswer(Message, bubble=False):
    """Matches from the agent, which one to show (`pick`: first / last / next / prev),
    and the lines around it."""

    def __init__(self, asked: int, matches: list[LogMatch], total: int | None,
                 pick: str, around: RawContext | None) -> None:
        super().__init__()
        self.asked, self.matches, self.total, self.pick = asked, matches, total, pick
        self.around = around


class FirstErrorFound(Message, bubble=False):
    """The agent's answer to `e`: the stage's first error line, or None."""

    def __init__(self, asked: int, line: LogMatch | None, around: RawContext | None) -> None:
        super().__init__()
        self.asked, self.line, self.around = asked, line, around


class AroundLoaded(Message, bubble=False):
    """The lines around a match, to replace the window with."""

    def __init__(self, match: LogMatch, around: RawContext, note: str) -> None:
        super().__init__()
        self.match, self.around, self.note = match, around, note


class LogSearching:
    if TYPE_CHECKING:  # provided by LogView
        app: Any
        scroll_offset: Any
        run_id: int
        stage: str | None
        search: re.Pattern[str] | None
        match_line: int | None
        follow: bool
        window: Any

        def post_message(self, message: Message) -> bool: ...
        def _changed(self, layout: bool = True) -> None: ...
        def _show_line(self, index: int) -> None: ...
        def _status(self, note: str) -> None: ...
        def _hold_live(self) -> None: ...
        def _release_live(self) -> None: ...
        def line_at_row(self, row: int) -> tuple[int, int]: ...
        @property
        def marking(self) -> bool: ...
        def copy_marked(self) -> None: ...

    searching: SearchState | None = None
    target: LogMatch | None = None  # the line being brought into view (a match, an error)
    # The newest key that asks the agent (search, n / N, e). An answer to an older one is
    # dropped, and so is what it would have asked next (n past the last match wraps with a
    # second question): `e` pressed while `n` was on its way was overtaken by `n`'s wrap.
    asked: int = 0

    def _new_question(self) -> int:
        self.asked += 1
        self._hold_live()  # the view is about to move: no flood repaint in the answer's way
        return self.asked

    # -- asking the agent ---------------------------------------------------------------------
    def set_search(self, term: str) -> None:
        self.search = re.compile(re.escape(term), re.IGNORECASE) if term else None
        self.match_line = None
        self.searching = SearchState(term) if term else None
        self._changed()
        if not term:
            self._status("search cleared")
        elif self.stage is None:
            self._status("pick a stage to search its whole log")
        else:
            self._status(f"searching for {term!r}…")
            self._ask(self._new_question(), term, None, None, "first")

    @work(group="log-search", exclusive=True, exit_on_error=False)
    async def _ask(self, asked: int, term: str, after: str | None, before: str | None,
                   pick: str) -> None:
        assert self.stage is not None
        # The lines around the match come in the same answer: a match far from the window
        # is shown after one round trip, not two.
        page, around = await services(self).client.search_log(  # type: ignore[arg-type]
            self.run_id, self.stage, term, after=after, before=before, limit=MATCH_PAGE,
            context=AROUND)
        self.post_message(SearchAnswer(asked, page.matches, page.total, pick, around))

    def on_search_answer(self, message: SearchAnswer) -> None:
        state = self.searching
        if state is None or message.asked != self.asked:
            return  # an answer to a key since overtaken by another
        if message.total is not None:
            state.total = message.total
        if not message.matches:
            if message.pick == "first" and state.total == 0:
                self._release_live()
                self._status(f"no match for {state.term!r} in the whole log")
            elif message.pick == "next":  # past the last one: wrap to the first
                self._ask(message.asked, state.term, None, None, "first")
            elif message.pick == "prev":
                self._ask(message.asked, state.term, None, LAST_ULID, "last")
            return
        state.matches = message.matches
        # Paging back (`N`, or wrapping to the last), the page ends at the match wanted.
        backwards = message.pick in ("last", "prev")
        self._go(message.matches[-1] if backwards else message.matches[0], message.around)

    def action_next_match(self, step: int) -> None:
        state = self.searching
        if state is None:
            self._status("press / to search")
            return
        if state.current is None:
            return  # the first answer is still on its way
        if self.stage is None:
            return
        asked = self._new_question()
        known = {m.index: m for m in state.matches}
        wanted = known.get(state.current.index + step)
        if wanted is not None:
            self._go(wanted)
        elif step > 0:
            self._ask(asked, state.term, state.current.id, None, "next")
        else:
            self._ask(asked, state.term, None, state.current.id, "prev")

    # -- the first error ----------------------------------------------------------------------
    def action_first_error(self) -> None:
        if self.stage is None:
            self._status("pick a stage to find its first error")
            return
        asked = self._new_question()  # an answer still on its way is overtaken
        index = self._first_error_loaded()
        if index is not None:
            self.target = None
            self._show_match(index, f"first error: line {index + 1:,}")
            return
        self._status("looking for the first error…")
        self._ask_first_error(asked)

    def _first_error_loaded(self) -> int | None:
        """The first error line, found in the window when it holds the log from its first
        line (a short log, or one paged to its top): the agent would answer the same line,
        a round trip later."""
        w = self.window
        if w.has_older or w.abs_start != 0:
            return None
        return next((i for i, ln in enumerate(w.lines) if READS_LIKE_AN_ERROR.search(ln.text)),
                    None)

    @work(group="log-search", exclusive=True, exit_on_error=False)
    async def _ask_first_error(self, asked: int) -> None:
        assert self.stage is not None
        line, around = await services(self).client.first_error(  # type: ignore[arg-type]
            self.run_id, self.stage, context=AROUND)
        self.post_message(FirstErrorFound(asked, line, around))

    def on_first_error_found(self, message: FirstErrorFound) -> None:
        if message.asked != self.asked:
            return  # overtaken by a later key
        if message.line is None:
            self._release_live()
            self._status("no error line in this stage's log")
        else:
            self._bring(message.line, f"first error: line {message.line.number:,}",
                        message.around)

    # -- showing a match ----------------------------------------------------------------------
    def _go(self, match: LogMatch, around: RawContext | None = None) -> None:
        assert self.searching is not None
        self.searching.current = match
        self._bring(match, around=around)

    def _bring(self, match: LogMatch, note: str = "", around: RawContext | None = None
               ) -> None:
        """Show `match`'s line: in the window, else in the lines around it (sent with the
        answer, or loaded now)."""
        self.target = match
        index = next((i for i, ln in enumerate(self.window.lines) if ln.id == match.id), None)
        if index is not None:
            self._show_match(index, note)
        elif around is not None:
            self._show_around(match, around, note)
        else:
            self._status(f"loading line {match.number:,}…")
            self._load_around(match, note)

    def _show_match(self, index: int, note: str = "") -> None:
        self.follow = False
        self.match_line = index
        self._show_line(index)
        self._release_live()
        self._status(note)

    def search_note(self) -> str:
        """`match 3 / 1,922 (line 40,211)` while a search is on (the pane's status line)."""
        state = self.searching
        if state is None or state.current is None:
            return ""
        total = f"{state.total:,}" if state.total is not None else "?"
        return f"match {state.current.index:,} / {total} (line {state.current.number:,})"

    @work(group="log-page", exclusive=True, exit_on_error=False)
    async def _load_around(self, match: LogMatch, note: str) -> None:
        client = services(self).client  # type: ignore[arg-type]
        # Both sides at once: the lines before the match, and the match with those after.
        (older, _), (newer, _) = await asyncio.gather(
            client.log_page_raw(self.run_id, stage=self.stage, before=match.id, limit=AROUND),
            client.log_page_raw(self.run_id, stage=self.stage, after=ulid_before(match.id),
                                limit=AROUND + 1))
        self.post_message(AroundLoaded(match, RawContext(
            older + newer, more_before=len(older) >= AROUND, more_after=len(newer) > AROUND),
            note))

    def on_around_loaded(self, message: AroundLoaded) -> None:
        if self.target is message.match:  # else a line asked for before the last one
            self._show_around(message.match, message.around, message.note)

    def _show_around(self, match: LogMatch, around: RawContext, note: str) -> None:
        """The window becomes the lines around `match`, and shows it."""
        lines = [make_line(ln) for ln in around.lines]
        index = next((i for i, ln in enumerate(lines) if ln.id == match.id), None)
        if index is None:
            self._release_live()
            self._status(f"line {match.number:,} is no longer stored")
            return
        self.window.reset(lines, has_older=around.more_before,
                          at_live_end=not around.more_after, abs_start=match.number - 1 - index)
        self._changed()
        self._show_match(index, note)

    # -- save, copy ---------------------------------------------------------------------------
    def action_save(self) -> None:
        if self.stage is None:
            self._status("pick a stage to save its log")
            return
        path = Path.cwd() / f"seamless-run{self.run_id}-{_slug(self.stage)}.log"
        self._status(f"saving to {path}…")
        self._save(path)

    @work(group="log-save", exclusive=True, exit_on_error=False)
    async def _save(self, path: Path) -> None:
        """Every stored line of the stage, page by page, as plain text (no escapes)."""
        client = services(self).client  # type: ignore[arg-type]
        after, count = None, 0
        with path.open("w", encoding="utf-8") as out:
            while True:
                page = await client.log_page(self.run_id, stage=self.stage, after=after,
                                             limit=SAVE_PAGE)
                out.writelines(plain(sanitize(ln.text)) + "\n" for ln in page.lines)
                count += len(page.lines)
                if len(page.lines) < SAVE_PAGE:
                    break
                after = page.lines[-1].id
        self.post_message(Saved(path, count))

    def on_saved(self, message: Saved) -> None:
        self.app.notify(f"{message.count:,} lines saved to {message.path}", title="Log saved")
        self._status(f"saved {message.count:,} lines to {message.path.name}")

    def on_click(self, event: Any) -> None:
        """A click picks the line `y` copies."""
        index = self.line_at_row(self.scroll_offset.y + event.y)[0]
        if 0 <= index < len(self.window.lines):
            self.match_line = index
            self._changed()
            self._status(f"line {index + 1 + (self.window.abs_start or 0):,} picked: y copies it")

    def action_copy_line(self) -> None:
        """The marked lines (`v`), else the picked line, else the top line shown."""
        if self.marking:
            self.copy_marked()
            return
        lines = self.window.lines
        index = self.match_line if self.match_line is not None and \
            0 <= self.match_line < len(lines) else None
        if index is None and lines:
            index = self.line_at_row(self.scroll_offset.y)[0]
        if index is None or index >= len(lines):
            self._status("no line to copy")
            return
        text = lines[index].plain
        self.app.copy_to_clipboard(text)  # OSC 52: the terminal's clipboard, also over SSH
        self._status(f"copied line {index + 1 + (self.window.abs_start or 0):,} "
                     f"({len(text):,} characters)")


class Saved(Message, bubble=False):
    def __init__(self, path: Path, count: int) -> None:
        super().__init__()
        self.path, self.count = path, count


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")

