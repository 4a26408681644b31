"""Starting the stack: its parts concurrently, or all of `sagaline up` as one child process.

`up` starts its parts with `start_together`; tests and benchmarks that need the whole stack
run `up` itself through `UpProcess`. Both spawn, wait and stop through `ChildProcess`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.config import STARTUP_TIMEOUT_SECONDS
from runtime.embedded.process import (
    LOG_TAIL_LINES,
    ChildProcess,
    ComponentStartError,
    http_answers,
    log_tail,
)
from runtime.ports import free_ports

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"
# Beyond `up`'s own bound: its interpreter start, and time for it to report the late part.
UP_MARGIN_SECONDS = 60.0
UP_STOP_GRACE = 60.0
UP_TAIL_LINES = 80
READY_POLL_SECONDS = 0.2
UP_BANNER = "sagaline is up"
"""What `up` prints once every part has started and it begins to supervise them."""


def sagaline_command(*arguments: str) -> list[str]:
    """The command line of `sagaline <arguments>` run by this interpreter from the project."""
    return [sys.executable, "-m", "runtime.cli", *arguments]


def sagaline_process(
    role: str, log_path: Path, env: Mapping[str, str], *, tail_lines: int = LOG_TAIL_LINES
) -> ChildProcess:
    """`sagaline <role>` (worker, followers, api, up) as a child process logging to `log_path`."""
    return ChildProcess(
        role, sagaline_command(role), log_path, env=env, cwd=PROJECT_ROOT, tail_lines=tail_lines
    )


class Deadline:
    """One bound shared by every part of a start: each waits only for what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._started = time.monotonic()

    def remaining(self) -> float:
        """Seconds left, at least a small positive amount so a wait checks readiness once."""
        return max(0.1, self._started + self.seconds - time.monotonic())

    def elapsed(self) -> float:
        """Seconds since the start began."""
        return time.monotonic() - self._started


async def start_together(starts: Mapping[str, Coroutine[Any, Any, None]]) -> None:
    """Run every start at once; on the first failure cancel the others and raise it.

    A part that fails raises ComponentStartError naming itself; the message then also names
    the parts that were still starting and were stopped because of it.
    """
    tasks = {asyncio.create_task(start, name=name): name for name, start in starts.items()}
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        unfinished = [task for task in tasks if not task.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    failures = [task for task in done if task.exception() is not None]
    if not failures:
        return
    error = failures[0].exception()
    assert error is not None
    if pending and isinstance(error, ComponentStartError):
        stopped = ", ".join(sorted(tasks[task] for task in pending))
        raise ComponentStartError(f"{error}\n(stopped while still starting: {stopped})") from error
    raise error


@dataclass(frozen=True)
class StackPorts:
    """The ports one `sagaline up` binds."""

    api: int
    postgres: int
    temporal: int
    temporal_ui: int
    kafka: int
    worker_metrics: int = 0
    """The worker's /metrics and the Temporal SDK's metrics in it (0: not served)."""
    temporal_metrics: int = 0
    followers_metrics: int = 0
    """The followers process's /metrics and the Temporal SDK's metrics in it (0: not served)."""
    followers_temporal_metrics: int = 0

    @classmethod
    def free(cls) -> StackPorts:
        """Nine different ports nobody listens on right now."""
        return cls(*free_ports(9))


class UpProcess:
    """`sagaline up` as a child process, every component embedded, on `ports` in `data_dir`.

    `settings` are extra SAGALINE_* variables for it; any SAGALINE_* variable of ours is
    left out, so `up` starts every component itself. Its output goes to `<data_dir>.log`.
    """

    def __init__(
        self,
        data_dir: Path,
        ports: StackPorts,
        *,
        settings: Mapping[str, str] | None = None,
        startup_within: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.settings = dict(settings or {})
        self.startup_within = startup_within
        self.log_path = data_dir.with_name(f"{data_dir.name}.log")
        self._process = sagaline_process("up", self.log_path, self.env(), tail_lines=UP_TAIL_LINES)

    @property
    def graphql_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.api}/graphql"

    @property
    def api_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.api}"

    @property
    def worker_metrics_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.worker_metrics}/metrics"

    @property
    def temporal_metrics_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.temporal_metrics}/metrics"

    @property
    def followers_metrics_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.followers_metrics}/metrics"

    @property
    def temporal_address(self) -> str:
        return f"{LOCALHOST}:{self.ports.temporal}"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports.temporal_ui}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{LOCALHOST}:{self.ports.kafka}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@{LOCALHOST}:{self.ports.postgres}/sagaline"

    @property
    def pid(self) -> int:
        """Process id of `up`; the worker, the followers and the API are its children."""
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether `up` was started and has not exited."""
        return self._process.running

    def env(self) -> dict[str, str]:
        """Our environment without any SAGALINE_* variable, plus this stack's dir and ports."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGALINE_")}
        env.update(
            {
                "SAGALINE_DATA_DIR": str(self.data_dir),
                "SAGALINE_API_HOST": LOCALHOST,
                "SAGALINE_API_PORT": str(self.ports.api),
                "SAGALINE_POSTGRES_PORT": str(self.ports.postgres),
                "SAGALINE_TEMPORAL_PORT": str(self.ports.temporal),
                "SAGALINE_TEMPORAL_UI_PORT": str(self.ports.temporal_ui),
                "SAGALINE_KAFKA_PORT": str(self.ports.kafka),
                "SAGALINE_WORKER_METRICS_PORT": str(self.ports.worker_metrics),
                "SAGALINE_WORKER_TEMPORAL_METRICS_PORT": str(self.ports.temporal_metrics),
                "SAGALINE_FOLLOWERS_METRICS_PORT": str(self.ports.followers_metrics),
                "SAGALINE_FOLLOWERS_TEMPORAL_METRICS_PORT": str(
                    self.ports.followers_temporal_metrics
                ),
                "SAGALINE_STARTUP_TIMEOUT_SECONDS": str(self.startup_within),
                **self.settings,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    async def start(self) -> None:
        """Start `up` and wait until it says it is up: every part started, supervised from now.

        GraphQL answering is not enough: `up` still counts as starting then, and a part that
        dies meanwhile stops the whole stack rather than being restarted.

        `up` gives up by itself past its startup bound, naming the late part; that message
        and the end of `up`'s output are in the ComponentStartError raised here.
        """
        times_up = self._times_up()

        async def is_up() -> bool:
            answers = await http_answers(LOCALHOST, self.ports.api, "/graphql")
            return answers and self._times_up() > times_up

        self._process.start()
        try:
            await self._process.wait_ready(
                is_up,
                within=self.startup_within + UP_MARGIN_SECONDS,
                interval=READY_POLL_SECONDS,
            )
        except BaseException:
            await self._process.stop(UP_STOP_GRACE)
            raise

    def _times_up(self) -> int:
        """How often `up` has said it is up in its log (the log is kept across restarts)."""
        try:
            return self.log_path.read_text(errors="replace").count(UP_BANNER)
        except FileNotFoundError:
            return 0

    async def stop(self) -> int | None:
        """SIGTERM `up` and wait for its exit status; SIGKILL its process group if it hangs."""
        await self._process.stop(UP_STOP_GRACE)
        return self._process.returncode

    def log_tail(self) -> str:
        """The end of `up`'s output and of each component's log."""
        paths = [self.log_path, *sorted((self.data_dir / "logs").glob("*.log"))]
        return "\n".join(
            f"==> {path} <==\n{log_tail(path, UP_TAIL_LINES)}" for path in paths if path.exists()
        )
