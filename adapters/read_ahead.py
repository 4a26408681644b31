"""Reading the store's pages in order with the next page read while the current one is used.

A page read ahead is as good as one read now: events never change, and a gap-safe read that
saw less than exists now is only shorter. The caller still decides where each page starts; a
page read ahead from anywhere else is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar


class Page(Protocol):
    """A page of the global order: where the next one starts."""

    @property
    def next_position(self) -> int: ...


P = TypeVar("P", bound=Page)


class ReadAhead(Generic[P]):
    """Pages from `read(position, wait_seconds)`; after a page `full(position, page)` calls
    full, the page after it is read meanwhile."""

    def __init__(
        self,
        read: Callable[[int, float], Coroutine[Any, Any, P]],
        full: Callable[[int, P], bool],
    ) -> None:
        self._read = read
        self._full = full
        # The next page: (its start, the read).
        self._ahead: tuple[int, asyncio.Task[P]] | None = None

    async def page(self, position: int, wait_seconds: float) -> P:
        """The page after `position`, from the read ahead when it started there."""
        if self._ahead is not None and self._ahead[0] == position:
            task = self._ahead[1]
            self._ahead = None
            page = await task
        else:
            await self.stop()
            page = await self._read(position, wait_seconds)
        if self._full(position, page):
            after = page.next_position
            self._ahead = (after, asyncio.create_task(self._read(after, wait_seconds)))
        return page

    async def stop(self) -> None:
        """Cancel a read ahead that will not be used (the reader is done, or moved)."""
        if self._ahead is None:
            return
        task = self._ahead[1]
        self._ahead = None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
