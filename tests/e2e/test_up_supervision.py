"""`up` supervises its parts: a crashed worker or followers process is reported and
restarted, and work resumes.

This kills the session stack's worker, then its followers; each test only ends well once a
new one runs and a mutation completes again (read back through the projector), so the
tests after it find the stack healthy.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_bank_api import REGISTER
from tests.waiting import eventually

RESTART_WITHIN = 180


def child_pid(parent: int, role: str) -> int | None:
    """The pid of the `sagaline <role>` child of `parent`, if one runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        arguments = [argument for argument in command if argument]
        if int(ppid) == parent and arguments[-2:] == [b"runtime.cli", role.encode()]:
            return int(entry.name)
    return None


@pytest.mark.parametrize("role", ["worker", "followers"])
async def test_up_restarts_a_killed_worker_and_mutations_complete_again(
    stack: Stack, role: str
) -> None:
    worker = child_pid(stack.pid, role)
    assert worker is not None, f"the stack runs no {role}"
    reported_before = stack.log_path.read_text().count(f"{role} was killed by SIGKILL")
    os.kill(worker, signal.SIGKILL)

    async def reported() -> bool:
        text = stack.log_path.read_text()
        return text.count(f"{role} was killed by SIGKILL; restarting it in") > reported_before

    await eventually(reported, 60, f"`up` reported the killed {role}")
    line = [ln for ln in stack.log_path.read_text().splitlines() if "was killed" in ln][-1]
    assert f"logs/{role}.log" in line, line

    async def worker_back() -> bool:
        return child_pid(stack.pid, role) not in (None, worker)

    await eventually(worker_back, RESTART_WITHIN, f"a new {role} runs")
    email = f"{uuid.uuid4()}@example.com"
    variables = {
        "in": {
            "email": email,
            "name": "Back",
            "password": "secret-pw",
            "commandId": str(uuid.uuid4()),
        }
    }

    async def registers() -> bool:
        # The same command until it completes: a pending one is joined, never run twice.
        # Until the projector runs again in the new followers, reading the user back may fail.
        body = await asyncio.to_thread(stack.graphql, REGISTER, variables)
        payload = (body.get("data") or {}).get("registerUser") or {}
        return bool(payload.get("__typename") == "UserRegistered")

    await eventually(registers, RESTART_WITHIN, f"a mutation completes with the new {role}")
    assert f"{role} restarted" in stack.log_path.read_text()
