"""Run blocking work (Docker, git, boto3) off the event loop in daemon threads.

Not `asyncio.to_thread`: its pool threads are joined at interpreter exit, so a
stage still following a container's log would hold up a graceful shutdown. Stages
left running on shutdown are picked up again by restart recovery.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_thread(fn: Callable[[], T], name: str = "seamless-work") -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[..., None], value: object) -> None:
        if not future.done():
            setter(value)

    def work() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            try:
                loop.call_soon_threadsafe(settle, future.set_exception, exc)
            except RuntimeError:  # loop closed during shutdown
                pass
        else:
            try:
                loop.call_soon_threadsafe(settle, future.set_result, result)
            except RuntimeError:
                pass

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future
