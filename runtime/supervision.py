"""Keeping `up`'s parts running: a part that exits is restarted with backoff, until it crashes
too often within a window; then `up` stops the stack with that cause."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.config import Settings
from runtime.embedded.process import describe_exit

WATCH_INTERVAL = 0.5


@dataclass(frozen=True)
class RestartPolicy:
    """How soon a crashed part is restarted, and how many crashes within a window are too many."""

    max_crashes: int = 5
    window_seconds: float = 60.0
    first_delay: float = 1.0
    max_delay: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        """The policy SAGALINE_RESTART_* configure."""
        return cls(
            max_crashes=settings.restart_max_crashes,
            window_seconds=settings.restart_window_seconds,
            first_delay=settings.restart_backoff_seconds,
            max_delay=settings.restart_backoff_max_seconds,
        )


class CrashHistory:
    """One part's crashes within the policy's window."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._crashes: deque[float] = deque()

    @property
    def recent(self) -> int:
        """Crashes counted in the window as of the last one recorded."""
        return len(self._crashes)

    def crashed(self, at: float) -> float | None:
        """Record a crash at monotonic time `at`: seconds to wait before restarting, or None
        when this is the `max_crashes`-th crash within the window (stop instead)."""
        while self._crashes and self._crashes[0] <= at - self.policy.window_seconds:
            self._crashes.popleft()
        self._crashes.append(at)
        if len(self._crashes) >= self.policy.max_crashes:
            return None
        # 1 s, 2 s, 4 s... for the first, second, third crash within the window, capped.
        delay = self.policy.first_delay * 2.0 ** (len(self._crashes) - 1)
        return min(delay, self.policy.max_delay)


@dataclass
class SupervisedPart:
    """A running part: how to see that it exited, and how to start it again (until ready)."""

    name: str
    exit_status: Callable[[], int | None]
    log_path: Path
    restart: Callable[[], Awaitable[None]]


async def supervise(
    part: SupervisedPart,
    policy: RestartPolicy,
    say: Callable[[str], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str:
    """Restart `part` whenever it exits, reporting each crash; return why it was given up on."""
    history = CrashHistory(policy)
    while True:
        while (code := part.exit_status()) is None:
            await sleep(WATCH_INTERVAL)
        cause = f"{part.name} {describe_exit(code)}"
        while True:
            delay = history.crashed(clock())
            if delay is None:
                return (
                    f"{cause}: {history.recent} crashes within "
                    f"{policy.window_seconds:g}s; log {part.log_path}"
                )
            say(
                f"{cause}; restarting it in {delay:g}s (crash {history.recent} within "
                f"{policy.window_seconds:g}s; {policy.max_crashes} stop the stack; "
                f"log {part.log_path})"
            )
            await sleep(delay)
            try:
                await part.restart()
            except Exception as error:  # a restart that fails counts as another crash
                cause = f"{part.name} did not restart ({_first_line(error)})"
                continue
            say(f"{part.name} restarted")
            break


async def supervise_all(
    parts: Sequence[SupervisedPart], policy: RestartPolicy, say: Callable[[str], None]
) -> str:
    """Supervise every part at once until one is given up on; return that cause.

    Cancelling this (a stopping `up`) cancels every supervisor first, so nothing is
    restarted while the stack stops.
    """
    tasks = [asyncio.create_task(supervise(p, policy, say), name=p.name) for p in parts]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
