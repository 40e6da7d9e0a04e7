"""Rendered rows that die by reference counting, not by a GC pass.

Textual 8.2's `Strip.divide` and `Strip.crop_extend` cache their result on the strip, and
when the cut or crop covers the whole strip that result is the strip itself: the strip
then holds itself, with its seven small caches. The compositor does this to nearly every
row it draws, so every screenful of rows became cyclic garbage (~13,000 objects per young
collection in a log flood) that only a GC pass frees, a 10–40 ms pause inside a key.

`install()` wraps the two methods so that a strip never caches itself; other results are
cached as before. Nothing else changes: the same strips are returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from textual.strip import Strip


@cache  # once: a second wrap would wrap the wrappers
def install() -> None:
    """Wrap Strip.divide and Strip.crop_extend."""
    divide, crop_extend = Strip.divide, Strip.crop_extend

    def divide_without_self(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
        cuts = list(cuts)
        strips = divide(self, cuts)
        if len(strips) == 1 and strips[0] is self:
            # The key Textual used (cuts within the strip's length).
            length = self.cell_length
            self._divide_cache._cache.pop(tuple(c for c in cuts if c <= length), None)
        return strips

    def crop_extend_without_self(self: Strip, start: int, end: int,
                                 style: Any) -> Strip:
        strip = crop_extend(self, start, end, style)
        if strip is self:
            self._crop_extend_cache._cache.pop((start, end, style), None)
        return strip

    Strip.divide = divide_without_self  # type: ignore[method-assign]
    Strip.crop_extend = crop_extend_without_self  # type: ignore[method-assign]
