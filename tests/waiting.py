"""Waiting on a condition with a bound, never on a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.05


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Return once `check()` is true; fail with `what` if it is not within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                if await check():
                    return
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None
