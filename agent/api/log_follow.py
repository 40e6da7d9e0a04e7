"""One way to follow a run's log, for every live client (the WebSocket the TUI and CLI
use, the run page's server-sent events): the store's backlog after the client's
cursor, page by page, then the bus's live batches, skipping ids at or below the
last one sent — so a client that reconnects with its last ULID sees no gap and no
duplicate. Subscribe to the bus before calling: a line committed in between is in
both, and the cursor drops the copy; subscribing after would lose it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from starlette.concurrency import run_in_threadpool

from agent.bus import Subscription
from store.models import LogLine

BACKLOG_PAGE = 2000


async def follow_log(store: Any, sub: Subscription, run_id: int, stage: str | None,
                     after: str | None) -> AsyncGenerator[tuple[list[LogLine], bool], None]:
    """Yields `(lines, shared)`: `shared` when `lines` is the bus's own batch (every stage,
    the same object for every subscriber: render it once for all); else lines of `stage`
    only. Ends when the subscription lags (the client resumes by cursor)."""
    cursor = after
    while True:  # history, page by page
        page = await run_in_threadpool(store.log_page, run_id, stage=stage, after=cursor,
                                       limit=BACKLOG_PAGE)
        if page.lines:
            yield page.lines, False
            cursor = page.lines[-1].id
        if len(page.lines) < BACKLOG_PAGE:
            break
    while not sub.lagged:  # live, in commit order
        batch: list[LogLine] = await sub.get()
        if cursor is not None and batch[0].id <= cursor:
            # Overlaps the backlog just sent (ids are in commit order): drop the copies.
            batch = [ln for ln in batch if ln.id > cursor]
            if not batch:
                continue
            cursor = batch[-1].id
            yield [ln for ln in batch if stage is None or ln.stage == stage], False
            continue
        cursor = batch[-1].id
        yield batch, True
