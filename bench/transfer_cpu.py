"""CPU time per transfer, by process of the stack, over a fixed number of API transfers.

One stack as `sagaline up` starts it (see `_stack.running_stack`), ACCOUNTS accounts opened
through GraphQL, then ROUNDS rounds of CLIENTS clients each sending CLIENT_TRANSFERS
`transferMoney` mutations one after the other between two accounts drawn from all of them
(the 12-client phase of `bench/graphql_transfer.py`, without its other phases). Each round
reports the CPU seconds (user + system) every process spent per transfer, grouped by role
(`worker`, `followers`, `api`, `temporal`, `postgres`, ...); the result is the median per
role over rounds. The stack's CPU while idle (IDLE_SECONDS with no transfer) is measured
first; `net_of_idle_median` takes that rate times each round's duration out, since a slower
round otherwise counts more heartbeats and idle wake-ups per transfer. CPU per transfer
depends less on the machine's other load than latency does, but still on the rate (see
SAGALINE_BENCH_CLIENTS below).

SAGALINE_BENCH_PROFILE=DIR: also record each of the worker, followers and API processes with
py-spy during the last round (speedscope files in DIR; py-spy must be on PATH).
SAGALINE_BENCH_ROUNDS=N: the number of rounds (default ROUNDS).
SAGALINE_BENCH_CLIENTS=N, SAGALINE_BENCH_CLIENT_TRANSFERS=N: clients and transfers per client
in a round (default 12 and 15). The followers' batches hold more appends the faster
transfers come, so their CPU per transfer falls with the rate: compare runs at similar
rates, or one client at a time (1 client), where every transfer is alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil  # type: ignore[import-untyped]
from _stack import (
    cpu_by_role,
    expect,
    graphql_data,
    open_account,
    register_user,
    running_stack,
    stack_cpu,
)
from _support import emit, median, progress, rounded

from runtime.launcher import UpProcess

ACCOUNTS = 40
CLIENTS = int(os.environ.get("SAGALINE_BENCH_CLIENTS", 12))
CLIENT_TRANSFERS = int(os.environ.get("SAGALINE_BENCH_CLIENT_TRANSFERS", 15))
ROUNDS = 3
IDLE_SECONDS = 15.0
WARMUP = 12
OPENING_AT_ONCE = 8
DEPOSIT = "100000.00"
AMOUNT = "1.00"

TRANSFER_MONEY = """
mutation Transfer($input: TransferMoneyInput!) {
  transferMoney(input: $input) {
    __typename
    ... on TransferCompleted { position }
    ... on TransferPending { message }
  }
}
"""


async def transfer(http: httpx.AsyncClient, url: str, source: str, destination: str) -> None:
    variables = {
        "input": {
            "fromAccountId": source,
            "toAccountId": destination,
            "amount": AMOUNT,
            "transferId": f"bench-cpu-{uuid.uuid4()}",
        }
    }
    while True:
        data = await graphql_data(http, url, TRANSFER_MONEY, variables)
        if data["transferMoney"]["__typename"] != "TransferPending":
            expect(data["transferMoney"], "TransferCompleted")
            return


def role_pids(stack: UpProcess, roles: set[str]) -> dict[str, int]:
    """The pids of the sagaline processes of these roles (`runtime.cli ROLE`)."""
    found: dict[str, int] = {}
    for child in psutil.Process(stack.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if "runtime.cli" in cmdline and cmdline[-1] in roles:
                found[cmdline[-1]] = int(child.pid)
    return found


def start_profilers(stack: UpProcess, directory: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy recording the worker, followers and API processes into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--gil",
                "--nonblocking",
                "--format",
                "speedscope",
                "--output",
                str(directory / f"{role}.json"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for role, pid in role_pids(stack, {"worker", "followers", "api"}).items()
    ]


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    """Stop the recordings (SIGINT makes py-spy write its file)."""
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        profiler.wait(30)


async def main() -> None:
    rounds = int(os.environ.get("SAGALINE_BENCH_ROUNDS", ROUNDS))
    profile_dir = os.environ.get("SAGALINE_BENCH_PROFILE")
    async with running_stack() as stack, httpx.AsyncClient(timeout=60.0) as http:
        url = stack.graphql_url
        owner = await register_user(http, url)
        opening = asyncio.Semaphore(OPENING_AT_ONCE)

        async def opened() -> str:
            async with opening:
                return await open_account(http, url, owner, DEPOSIT)

        accounts = list(await asyncio.gather(*(opened() for _ in range(ACCOUNTS))))
        chooser = random.Random(20261202)
        for _ in range(WARMUP):
            await transfer(http, url, *chooser.sample(accounts, 2))
        progress(f"{ACCOUNTS} accounts opened, {WARMUP} warm-up transfers")
        # What the stack spends with nothing to do (heartbeats, idle wake-ups, polls), per
        # second: taken out of each round's figures for the `net` ones.
        await asyncio.sleep(2.0)
        before = stack_cpu(stack)
        began = time.perf_counter()
        await asyncio.sleep(IDLE_SECONDS)
        idle_wall = time.perf_counter() - began
        idle = {role: s / idle_wall for role, s in cpu_by_role(before, stack_cpu(stack)).items()}
        progress("idle CPU ms/s " + ", ".join(f"{r} {1000 * v:.1f}" for r, v in idle.items()))
        net_rounds: list[dict[str, float]] = []
        per_round: list[dict[str, float]] = []
        for index in range(rounds):
            plans = [
                [tuple(chooser.sample(accounts, 2)) for _ in range(CLIENT_TRANSFERS)]
                for _ in range(CLIENTS)
            ]

            async def client(plan: list[tuple[str, ...]]) -> None:
                for source, destination in plan:
                    await transfer(http, url, source, destination)

            profilers: list[subprocess.Popen[bytes]] = []
            if profile_dir is not None and index == rounds - 1:
                profilers = start_profilers(stack, Path(profile_dir))
                await asyncio.sleep(1.0)
            before = stack_cpu(stack)
            began = time.perf_counter()
            try:
                await asyncio.gather(*(client(plan) for plan in plans))
            except Exception:
                progress(f"a transfer failed; the stack's logs end with:\n{stack.log_tail()}")
                raise
            wall = time.perf_counter() - began
            spent = cpu_by_role(before, stack_cpu(stack))
            stop_profilers(profilers)
            count = CLIENTS * CLIENT_TRANSFERS
            figures = {role: 1000 * seconds / count for role, seconds in spent.items()}
            figures["stack"] = sum(v for r, v in figures.items() if r != "bench")
            figures["transfers_per_s"] = count / wall
            per_round.append(figures)
            net = {
                role: 1000 * (seconds - idle.get(role, 0.0) * wall) / count
                for role, seconds in spent.items()
            }
            net["stack"] = sum(v for r, v in net.items() if r != "bench")
            net_rounds.append(net)
            progress(
                f"round {index + 1}/{rounds}: {count / wall:.2f}/s, CPU ms per transfer "
                + ", ".join(f"{r} {v:.1f}" for r, v in sorted(figures.items(), key=lambda i: -i[1]))
            )
        # Let the followers finish before the stack stops (their CPU is counted per round).
        await asyncio.sleep(1.0)
    roles = sorted({role for figures in per_round for role in figures})
    medians = {
        role: rounded(median([figures.get(role, 0.0) for figures in per_round])) for role in roles
    }
    result: dict[str, Any] = {
        "bench": "transfer_cpu",
        "value": medians["stack"],
        "unit": "CPU ms per transfer, whole stack (median over rounds)",
        "lower_is_better": True,
        "figures": [
            {"name": role, "value": medians[role], "unit": "CPU ms per transfer"}
            for role in ("worker", "followers", "api", "temporal", "postgres")
            if role in medians
        ],
        "rounds": rounds,
        "transfers_per_round": CLIENTS * CLIENT_TRANSFERS,
        "load": os.getloadavg()[0],
        "median": medians,
        "per_round": [{r: rounded(v) for r, v in figures.items()} for figures in per_round],
        "idle_cpu_ms_per_s": {role: rounded(1000 * v) for role, v in idle.items()},
        "net_of_idle_median": {
            role: rounded(median([net.get(role, 0.0) for net in net_rounds]))
            for role in sorted({role for net in net_rounds for role in net})
        },
    }
    emit(result)


if __name__ == "__main__":
    asyncio.run(main())
