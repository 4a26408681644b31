"""transferMoney latency through the GraphQL API, against the bare TransferSaga run directly.

One stack, started as `python -m runtime.cli up` starts it (see `_stack.running_stack`:
embedded Postgres, Temporal, Kafka broker, worker, followers and API on free ports, data
under /tmp).
ACCOUNTS accounts are opened and funded through GraphQL, with ample balance and daily limit.

- The project: the `transferMoney` mutation POSTed to the API over HTTP (httpx). The API starts
  the TransferSaga on the stack's task queue, waits for its outcome, waits until the transfers
  read model has the saga's last event, and answers from it. Every answer must be
  `TransferCompleted`. Latency is the HTTP request's.
- Baseline: the same TransferSaga (same `TransferMoney` command, workflow id from
  `transfer_workflow_id`) started from this process with `Client.execute_workflow` against
  the same stack's Temporal and task queue `sagaline`, as `bench/saga_throughput.py` does, so
  the same worker process runs it. Latency is start call to result. The difference between
  the two is the API's overhead: HTTP and GraphQL, search attributes and summary on the
  start, and the read-your-writes wait.

Sequential: SEQUENTIAL transfers per side, one at a time, the sides alternating transfer by
transfer; the goal is p50 <= 100 ms and p99 <= 250 ms through the API. Concurrent:
CONCURRENT_ROUNDS rounds per side (order swapped every round), each starting CONCURRENT
transfers at once on disjoint account pairs and waiting for all. After each sequential
direct saga the script also times how long the transfers projection then took to reach the
saga's position (`read_model_wait_ms`), the part of the API's overhead that is the
read-your-writes wait.

Clients: CLIENTS API clients at once, each sending CLIENT_TRANSFERS transfers one after the
other between random accounts of all ACCOUNTS (so some accounts are hot). A client answered
`TransferPending` counts it and sends the same transferId again until the transfer's end; its
latency runs from the first send to the final answer. The goal is p99 <= 1 s and no pending
answer. The phase reports the rate, and the CPU time every process of the stack (and this
one) spent per transfer meanwhile.

`--sequential-only` runs the warm-up and the sequential part alone (no concurrent rounds, no
clients; their entries are null in the JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _stack import (
    CLIENT_TOKEN,
    cpu_by_role,
    expect,
    graphql_data,
    open_account,
    register_user,
    running_stack,
    stack_cpu,
)
from _support import emit, median, percentile, progress, rounded
from temporalio.client import Client

from adapters.database import create_engine
from adapters.temporal import connect
from domain.transfers import TransferMoney
from projections.consistency import caught_up
from runtime.launcher import UpProcess
from workflows.transfers import TransferOutcome, TransferSaga, transfer_workflow_id

CONCURRENT = 8
ACCOUNTS = 40
CLIENTS = 12
CLIENT_TRANSFERS = 15
OPENING_AT_ONCE = 8
SEQUENTIAL = 30
CONCURRENT_ROUNDS = 5
WARMUP = 3
DEPOSIT = "1000.00"
AMOUNT = Decimal("1.00")
TASK_QUEUE = "sagaline"  # the stack's default SAGALINE_TEMPORAL_TASK_QUEUE
NAMESPACE = "default"
READ_MODEL_WAIT_LIMIT = 10.0
GOAL_P50_MS = 100.0
GOAL_P99_MS = 250.0
GOAL_CLIENTS_P99_MS = 1000.0

TRANSFER_MONEY = """
mutation Transfer($input: TransferMoneyInput!) {
  transferMoney(input: $input) {
    __typename
    ... on TransferCompleted { position transfer { id status } }
    ... on TransferPending { message }
  }
}
"""

Transfer = Callable[[str, str], Awaitable[int]]
"""Moves AMOUNT from one account to another; returns the position of the saga's last event."""


class Sides:
    """One transfer through the API, or one TransferSaga run directly."""

    def __init__(self, stack: UpProcess, http: httpx.AsyncClient, temporal: Client) -> None:
        self.url = stack.graphql_url
        self.http = http
        self.temporal = temporal
        self.headers = {"Authorization": f"Bearer {CLIENT_TOKEN}"}

    async def api(self, source: str, destination: str) -> int:
        return (await self.api_counting_pending(source, destination))[0]

    async def api_counting_pending(self, source: str, destination: str) -> tuple[int, int]:
        """The transfer's last position, and how often it was answered TransferPending."""
        variables = {
            "input": {
                "fromAccountId": source,
                "toAccountId": destination,
                "amount": str(AMOUNT),
                "transferId": f"bench-api-{uuid.uuid4()}",
            }
        }
        pending = 0
        while True:
            data = await graphql_data(self.http, self.url, TRANSFER_MONEY, variables)
            if data["transferMoney"]["__typename"] != "TransferPending":
                break
            pending += 1
        return int(expect(data["transferMoney"], "TransferCompleted")["position"]), pending

    async def direct(self, source: str, destination: str) -> int:
        transfer_id = f"bench-direct-{uuid.uuid4()}"
        # The day the API would use (datetime.now(UTC) in api/transfers/mutations.py).
        day = datetime.now(UTC).date().isoformat()
        command = TransferMoney(transfer_id, source, destination, AMOUNT, day, "bench")
        outcome: TransferOutcome = await self.temporal.execute_workflow(
            TransferSaga.run,
            command,
            id=transfer_workflow_id(transfer_id),
            task_queue=TASK_QUEUE,
        )
        if outcome.status != "COMPLETED":
            raise RuntimeError(f"direct transfer ended {outcome}")
        return outcome.position


async def timed(transfer: Transfer, source: str, destination: str) -> tuple[float, int]:
    began = time.perf_counter()
    position = await transfer(source, destination)
    return time.perf_counter() - began, position


def ms(values: list[float], fraction: float) -> float:
    return 1000 * percentile(values, fraction)


async def main(sequential_only: bool) -> None:
    async with running_stack() as stack:
        await measure(stack, sequential_only)


async def measure(stack: UpProcess, sequential_only: bool = False) -> None:
    async with httpx.AsyncClient(timeout=60.0) as http:
        owner = await register_user(http, stack.graphql_url)
        opening = asyncio.Semaphore(OPENING_AT_ONCE)

        async def opened() -> str:
            async with opening:
                return await open_account(http, stack.graphql_url, owner, DEPOSIT)

        accounts = list(await asyncio.gather(*(opened() for _ in range(ACCOUNTS))))
        progress(f"{ACCOUNTS} accounts opened with {DEPOSIT} each")
        temporal = await connect(stack.temporal_address, NAMESPACE)
        engine = create_engine(stack.database_url, pool_size=2)
        sides = Sides(stack, http, temporal)
        run: dict[str, Transfer] = {"project": sides.api, "baseline": sides.direct}
        pairs = [(accounts[2 * i], accounts[2 * i + 1]) for i in range(CONCURRENT)]
        try:
            for side, transfer in run.items():
                for i in range(WARMUP):
                    await transfer(*pairs[i % CONCURRENT])
                progress(f"warm-up {side} done")

            sequential: dict[str, list[float]] = {"project": [], "baseline": []}
            read_model_waits: list[float] = []
            for i in range(SEQUENTIAL):
                source, destination = pairs[i % CONCURRENT]
                for side in ("project", "baseline") if i % 2 == 0 else ("baseline", "project"):
                    latency, position = await timed(run[side], source, destination)
                    sequential[side].append(latency)
                    if side == "baseline":
                        read_model_waits.append(await read_model_wait(engine, position))
            progress(
                f"sequential ({SEQUENTIAL} each): API p50 {ms(sequential['project'], 0.5):.0f} ms,"
                f" direct p50 {ms(sequential['baseline'], 0.5):.0f} ms"
            )

            rounds: dict[str, list[tuple[float, list[float]]]] = {"project": [], "baseline": []}
            for index in range(0 if sequential_only else CONCURRENT_ROUNDS):
                order = ["project", "baseline"] if index % 2 == 0 else ["baseline", "project"]
                for side in order:
                    began = time.perf_counter()
                    results = await asyncio.gather(*(timed(run[side], s, d) for s, d in pairs))
                    wall = time.perf_counter() - began
                    rounds[side].append((wall, [latency for latency, _ in results]))
                progress(
                    f"concurrent round {index + 1}/{CONCURRENT_ROUNDS}: "
                    + ", ".join(
                        f"{s} p50 {ms(rounds[s][-1][1], 0.5):.0f} ms"
                        f" p99 {ms(rounds[s][-1][1], 0.99):.0f} ms"
                        for s in order
                    )
                )
            clients = None if sequential_only else await clients_phase(stack, sides, accounts)
        finally:
            await engine.dispose()
        balances = await total_balance(http, stack.graphql_url, accounts)
    expected = Decimal(DEPOSIT) * ACCOUNTS
    if balances != expected:
        raise RuntimeError(f"balances add up to {balances}, not {expected}")
    progress("every transfer completed; balances add up")

    def concurrent(side: str, fraction: float) -> float:
        return median([ms(latencies, fraction) for _, latencies in rounds[side]])

    def rate(side: str) -> float:
        return median([len(latencies) / wall for wall, latencies in rounds[side]])

    value = ms(sequential["project"], 0.5)
    p99 = ms(sequential["project"], 0.99)
    baseline = ms(sequential["baseline"], 0.5)
    paired = median(
        [a / b for a, b in zip(sequential["project"], sequential["baseline"], strict=True)]
    )
    emit(
        {
            "bench": "graphql_transfer",
            "value": rounded(value),
            "unit": "ms (p50, sequential transferMoney)",
            "baseline": rounded(baseline),
            "ratio": rounded(value / baseline),
            "goal": f"p50 <= {GOAL_P50_MS:.0f} ms, p99 <= {GOAL_P99_MS:.0f} ms",
            "goal_met": value <= GOAL_P50_MS and p99 <= GOAL_P99_MS,
            "lower_is_better": True,
            "paired_ratio_median": rounded(paired),
            "api_overhead_p50_ms": rounded(value - baseline),
            "p99_ms": rounded(p99),
            "baseline_p99_ms": rounded(ms(sequential["baseline"], 0.99)),
            "read_model_wait_p50_ms": rounded(1000 * median(read_model_waits)),
            "read_model_wait_max_ms": rounded(1000 * max(read_model_waits)),
            "concurrent": None
            if sequential_only
            else {
                "transfers_per_round": CONCURRENT,
                "rounds": CONCURRENT_ROUNDS,
                "p50_ms": rounded(concurrent("project", 0.5)),
                "p99_ms": rounded(concurrent("project", 0.99)),
                "baseline_p50_ms": rounded(concurrent("baseline", 0.5)),
                "baseline_p99_ms": rounded(concurrent("baseline", 0.99)),
                "ratio_p50": rounded(concurrent("project", 0.5) / concurrent("baseline", 0.5)),
                "transfers_per_s": rounded(rate("project")),
                "baseline_transfers_per_s": rounded(rate("baseline")),
            },
            "clients": clients,
            "sequential": SEQUENTIAL,
            "samples_ms": {
                side: [round(1000 * v, 1) for v in values] for side, values in sequential.items()
            },
            "baseline_kind": "TransferSaga via Client.execute_workflow on the same stack's"
            " Temporal and task queue (same worker process), no API",
        }
    )


async def clients_phase(stack: UpProcess, sides: Sides, accounts: list[str]) -> dict[str, Any]:
    """CLIENTS clients sending transfers one after the other; latencies, rate and CPU split."""
    chooser = random.Random(20261201)
    plans = [
        [tuple(chooser.sample(accounts, 2)) for _ in range(CLIENT_TRANSFERS)]
        for _ in range(CLIENTS)
    ]
    latencies: list[float] = []
    pending = 0

    async def client(plan: list[tuple[str, ...]]) -> None:
        nonlocal pending
        for source, destination in plan:
            began = time.perf_counter()
            _, answered_pending = await sides.api_counting_pending(source, destination)
            latencies.append(time.perf_counter() - began)
            pending += answered_pending

    cpu_before = stack_cpu(stack)
    began = time.perf_counter()
    await asyncio.gather(*(client(plan) for plan in plans))
    wall = time.perf_counter() - began
    cpu = cpu_by_role(cpu_before, stack_cpu(stack))
    transfers = len(latencies)
    p99 = ms(latencies, 0.99)
    figures = {
        "clients": CLIENTS,
        "accounts": len(accounts),
        "transfers": transfers,
        "transfers_per_s": rounded(transfers / wall),
        "p50_ms": rounded(ms(latencies, 0.5)),
        "p99_ms": rounded(p99),
        "max_ms": rounded(1000 * max(latencies)),
        "pending_answers": pending,
        "goal": f"p99 <= {GOAL_CLIENTS_P99_MS:.0f} ms, no TransferPending",
        "goal_met": p99 <= GOAL_CLIENTS_P99_MS and pending == 0,
        "cpu_ms_per_transfer": {
            role: rounded(1000 * seconds / transfers)
            for role, seconds in sorted(cpu.items(), key=lambda item: -item[1])
        },
        "cpu_cores_busy": rounded(sum(cpu.values()) / wall),
    }
    progress(
        f"{CLIENTS} clients: {figures['transfers_per_s']}/s, p50 {figures['p50_ms']} ms,"
        f" p99 {figures['p99_ms']} ms, {pending} pending; CPU ms per transfer"
        f" {figures['cpu_ms_per_transfer']}"
    )
    return figures


async def read_model_wait(engine: Any, position: int) -> float:
    """Seconds until the transfers projection has processed `position` (polled every 2 ms)."""
    began = time.perf_counter()
    while not await caught_up(engine, ["transfers"], position):
        if time.perf_counter() - began > READ_MODEL_WAIT_LIMIT:
            raise RuntimeError(f"the transfers projection did not reach {position}")
        await asyncio.sleep(0.002)
    return time.perf_counter() - began


ACCOUNT_BALANCE = "query Balance($id: ID!) { account(id: $id) { balance } }"


async def total_balance(http: httpx.AsyncClient, url: str, accounts: list[str]) -> Decimal:
    """The accounts' balances from the read model, once it has caught up."""
    await asyncio.sleep(1.0)
    total = Decimal("0")
    for account_id in accounts:
        data = await graphql_data(http, url, ACCOUNT_BALANCE, {"id": account_id})
        total += Decimal(data["account"]["balance"])
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--sequential-only",
        action="store_true",
        help="only the warm-up and the one-at-a-time transfers",
    )
    asyncio.run(main(parser.parse_args().sequential_only))
