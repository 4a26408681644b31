"""Child processes of the embedded stack: start with a log file, wait until ready, stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 30


class ComponentStartError(RuntimeError):
    """A child process exited or never became ready while starting."""


class ChildProcess:
    """One long-running child whose stdout and stderr are appended to a log file.

    The child gets its own process group, so a Ctrl-C in the terminal reaches only the
    parent, which then stops its children in order.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        user: int | None = None,
        group: int | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        tail_lines: int = LOG_TAIL_LINES,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._user = user
        self._group = group
        self._cwd = cwd
        self._stop_signal = stop_signal
        self._tail_lines = tail_lines
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Process id of the running child."""
        return self._running().pid

    @property
    def returncode(self) -> int | None:
        """Exit status once the child has exited, else None."""
        return None if self._popen is None else self._popen.poll()

    @property
    def running(self) -> bool:
        """Whether the child was started and has not exited."""
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> None:
        """Spawn the child, appending its output to the log file."""
        if self._popen is not None and self._popen.poll() is None:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {self.name} start\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                user=self._user,
                group=self._group,
                extra_groups=[] if self._user is not None else None,
                process_group=0,
            )
        logger.debug("started %s (pid %d): %s", self.name, self._popen.pid, self.args)

    async def wait_ready(
        self,
        probe: Callable[[], Awaitable[bool]],
        *,
        within: float,
        interval: float = 0.2,
    ) -> None:
        """Poll `probe` until it returns True; fail if the child exits or `within` seconds pass."""
        deadline = time.monotonic() + within
        while True:
            code = self.returncode
            if code is not None:
                raise ComponentStartError(
                    f"{self.name} {describe_exit(code)} while starting; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if await probe():
                return
            if time.monotonic() >= deadline:
                raise ComponentStartError(
                    f"{self.name} was not ready after {within:.0f}s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            await asyncio.sleep(interval)

    async def stop(self, grace: float = 15.0) -> None:
        """Send the stop signal, then SIGKILL the process group if it outlives `grace` seconds."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is not None:
            # It crashed: what it started may live on in its group (a killed postmaster's
            # backends hold its shared memory and port), and would block a restart.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            return
        try:
            # A stopped child (SIGSTOP in an outage test) must resume to handle the signal.
            os.kill(popen.pid, signal.SIGCONT)
            popen.send_signal(self._stop_signal)
        except ProcessLookupError:
            pass
        if not await self._wait_exit(grace):
            logger.warning("%s did not stop within %.0fs; killing it", self.name, grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            await self._wait_exit(5.0)
        logger.debug("%s stopped with status %s", self.name, popen.returncode)

    async def kill(self) -> None:
        """SIGKILL the child's process group, as a crash would, and wait until it is gone."""
        popen = self._running()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        await self._wait_exit(30.0)

    def log_tail(self) -> str:
        """The last lines of the child's log file."""
        return log_tail(self.log_path, self._tail_lines)

    async def _wait_exit(self, within: float) -> bool:
        popen = self._running()
        deadline = time.monotonic() + within
        while popen.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _running(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen


def describe_exit(returncode: int) -> str:
    """`exited with status 3` or, for a negative Popen return code, `was killed by SIGKILL`."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


async def port_accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port succeeds (within a second)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_answers(host: str, port: int, path: str) -> bool:
    """Whether an HTTP server on host:port answers a GET of `path` with any status."""
    timeout = 5.0
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/html\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii"))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return status_line.startswith(b"HTTP/")
