"""Rounds of workflows started at once, measured by a sampler of RSS, CPU and loop lag.

`run_round` starts every workflow of a round together and waits for all; `Sampler` samples
this process's RSS, the Temporal server's RSS and the event loop's lag meanwhile;
`side_figures` takes the medians over a side's rounds. Running it as a script does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psutil  # type: ignore[import-untyped]
from _support import median, percentile

SAMPLE_SECONDS = 0.02

Starter = Callable[[], Awaitable[str]]
"""Starts one workflow and returns its final status once it has ended."""


class Sampler:
    """Samples this process's RSS, the Temporal server's RSS and the event loop's lag."""

    def __init__(self, server_pid: int) -> None:
        self.process = psutil.Process()
        self.server = psutil.Process(server_pid)
        self.peak_rss = 0
        self.peak_server_rss = 0
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def start(self) -> None:
        self.peak_rss = self.rss()
        self.peak_server_rss = int(self.server.memory_info().rss)
        self.lags = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)
            self.lags.append(max(0.0, loop.time() - expected))
            self.peak_rss = max(self.peak_rss, self.rss())
            self.peak_server_rss = max(self.peak_server_rss, int(self.server.memory_info().rss))


@dataclass
class Round:
    side: str
    workflows: int
    seconds: float
    latencies: list[float]
    peak_rss: int
    rss_at_start: int
    peak_server_rss: int
    cpu_seconds: float
    server_cpu_seconds: float
    lag_max: float
    lag_mean: float
    statuses: Counter[str]

    @property
    def rate(self) -> float:
        return self.workflows / self.seconds


async def run_round(side: str, starters: list[Starter], sampler: Sampler) -> Round:
    """Start every workflow at once and wait for all; latency is start call to result."""
    loop = asyncio.get_running_loop()
    cpu = sampler.process.cpu_times()
    server_cpu = sampler.server.cpu_times()
    rss_at_start = sampler.rss()
    sampler.start()

    async def one(start: Starter) -> tuple[float, str]:
        began = loop.time()
        status = await start()
        return loop.time() - began, status

    began = loop.time()
    try:
        results = await asyncio.gather(*(one(s) for s in starters))
    finally:
        await sampler.stop()
    seconds = loop.time() - began
    cpu_after = sampler.process.cpu_times()
    server_after = sampler.server.cpu_times()
    lags = sampler.lags or [0.0]
    return Round(
        side=side,
        workflows=len(starters),
        seconds=seconds,
        latencies=[latency for latency, _ in results],
        peak_rss=sampler.peak_rss,
        rss_at_start=rss_at_start,
        peak_server_rss=sampler.peak_server_rss,
        cpu_seconds=(cpu_after.user + cpu_after.system) - (cpu.user + cpu.system),
        server_cpu_seconds=(server_after.user + server_after.system)
        - (server_cpu.user + server_cpu.system),
        lag_max=max(lags),
        lag_mean=sum(lags) / len(lags),
        statuses=Counter(status for _, status in results),
    )


def side_figures(rounds: list[Round]) -> dict[str, Any]:
    """Medians over a side's rounds."""
    mib = 1024 * 1024
    return {
        "rate": median([r.rate for r in rounds]),
        "p50_ms": median([1000 * percentile(r.latencies, 0.5) for r in rounds]),
        "p99_ms": median([1000 * percentile(r.latencies, 0.99) for r in rounds]),
        "peak_rss_mib": max(r.peak_rss for r in rounds) / mib,
        "rss_delta_in_flight_mib": median([(r.peak_rss - r.rss_at_start) / mib for r in rounds]),
        "temporal_server_peak_rss_mib": max(r.peak_server_rss for r in rounds) / mib,
        "cpu_ms_per_workflow": median([1000 * r.cpu_seconds / r.workflows for r in rounds]),
        "temporal_server_cpu_ms_per_workflow": median(
            [1000 * r.server_cpu_seconds / r.workflows for r in rounds]
        ),
        "loop_lag_max_ms": median([1000 * r.lag_max for r in rounds]),
        "loop_lag_mean_ms": median([1000 * r.lag_mean for r in rounds]),
        "samples": [round(r.rate, 1) for r in rounds],
    }


if __name__ == "__main__":
    sys.exit(0)
