"""The whole stack for the GraphQL benchmarks, as `sagaline up` starts it, and calls to it.

`running_stack` runs `up` through the project's launcher (every component embedded, on free
ports, data under a temp dir in /tmp); the helpers below create users and accounts through
GraphQL as the bench's client. Running it as a script does nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402
from _support import progress  # noqa: E402

from runtime.launcher import StackPorts, UpProcess  # noqa: E402

CLIENT_TOKEN = "bench-client-token"
API_TOKENS = f"{CLIENT_TOKEN}:client"

REGISTER_USER = """
mutation Register($input: RegisterUserInput!) {
  registerUser(input: $input) {
    __typename
    ... on UserRegistered { user { id } position }
  }
}
"""
OPEN_ACCOUNT = """
mutation Open($input: OpenAccountInput!) {
  openAccount(input: $input) {
    __typename
    ... on AccountOpened { account { id } position }
  }
}
"""
DEPOSIT_MONEY = """
mutation Deposit($input: DepositMoneyInput!) {
  depositMoney(input: $input) {
    __typename
    ... on MoneyDeposited { account { balance } position }
  }
}
"""


@contextlib.asynccontextmanager
async def running_stack(settings: Mapping[str, str] | None = None) -> AsyncIterator[UpProcess]:
    """`sagaline up` in a temp dir under /tmp, stopped and removed afterwards; `settings` are
    extra SAGALINE_* variables for it.

    Under /tmp, as in tests/e2e: embedded Postgres runs as an unprivileged account when we
    are root and must be able to reach its data.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="sagaline-bench-up-"))
    variables = {"SAGALINE_API_TOKENS": API_TOKENS, **(settings or {})}
    stack = UpProcess(data_dir, StackPorts.free(), settings=variables)
    progress(f"starting `runtime.cli up` in {data_dir} (API on port {stack.ports.api})")
    started = time.monotonic()
    try:
        await stack.start()
        progress(f"stack up after {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        progress("stopping the stack")
        code = await stack.stop()
        progress(f"`up` exited with status {code}")
        shutil.rmtree(data_dir, ignore_errors=True)
        stack.log_path.unlink(missing_ok=True)


def api_pid(stack: UpProcess) -> int:
    """The pid of the stack's API process (`runtime.cli api`, a child of `up`)."""
    for child in psutil.Process(stack.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if "runtime.cli" in cmdline and cmdline[-1] == "api":
                return int(child.pid)
    raise RuntimeError("cannot find the stack's API process")


def stack_cpu(stack: UpProcess) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) so far of every process of the stack, by pid, with its role.

    The role is `worker`, `followers`, `api` or `up` for the sagaline processes, else the
    program's name (`postgres`, `temporal`, the broker's); `bench` is this process.
    """
    found: dict[int, tuple[str, float]] = {}
    root = psutil.Process(stack.pid)
    for process in [root, *root.children(recursive=True), psutil.Process()]:
        with contextlib.suppress(psutil.Error):
            cmdline = process.cmdline()
            if process.pid == os.getpid():
                role = "bench"
            elif "runtime.cli" in cmdline:
                role = cmdline[-1]
            else:
                # Postgres backends retitle themselves "postgres: user db host ...".
                program = cmdline[0].split(":")[0].split()[0] if cmdline else process.name()
                role = Path(program).name
            times = process.cpu_times()
            found[process.pid] = (role, times.user + times.system)
    return found


def cpu_by_role(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each role spent between two `stack_cpu` samples (exited processes left out)."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        earlier = before.get(pid, (role, 0.0))[1]
        spent[role] = spent.get(role, 0.0) + seconds - earlier
    return spent


async def graphql_data(
    client: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """POST an operation as the bench's client; its `data`, which must come without errors."""
    response = await client.post(
        url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def expect(payload: dict[str, Any], typename: str) -> dict[str, Any]:
    """The payload, which must be of the success type `typename`."""
    if payload.get("__typename") != typename:
        raise RuntimeError(f"expected {typename}, got {payload}")
    return payload


async def register_user(client: httpx.AsyncClient, url: str) -> str:
    """A new user's id."""
    tag = uuid.uuid4().hex[:10]
    variables = {
        "input": {"email": f"bench-{tag}@example.com", "name": "Bench", "password": "benchpass1"}
    }
    data = await graphql_data(client, url, REGISTER_USER, variables)
    payload = expect(data["registerUser"], "UserRegistered")
    return str(payload["user"]["id"])


async def open_account(client: httpx.AsyncClient, url: str, owner_id: str, deposit: str) -> str:
    """A new account of `owner_id` holding `deposit`.

    Each command carries a commandId and is sent again while it answers CommandPending (a
    busy machine), so it runs once.
    """
    opened = await until_done(
        client, url, OPEN_ACCOUNT, {"ownerId": owner_id, "commandId": str(uuid.uuid4())}
    )
    account_id = str(expect(opened["openAccount"], "AccountOpened")["account"]["id"])
    deposited = await until_done(
        client,
        url,
        DEPOSIT_MONEY,
        {"accountId": account_id, "amount": deposit, "commandId": str(uuid.uuid4())},
    )
    expect(deposited["depositMoney"], "MoneyDeposited")
    return account_id


async def until_done(
    client: httpx.AsyncClient, url: str, mutation: str, command: dict[str, Any]
) -> dict[str, Any]:
    """A mutation's data, sent again with the same input while it answers CommandPending."""
    while True:
        data = await graphql_data(client, url, mutation, {"input": command})
        if next(iter(data.values()))["__typename"] != "CommandPending":
            return data


if __name__ == "__main__":
    sys.exit(0)
