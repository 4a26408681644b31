"""TransferSaga throughput end to end, against a bare workflow of 5 no-op activities.

One process runs everything except the servers: a Temporal dev server (in memory, free
ports, started here), the machine's Postgres (or an embedded one, see `_support`), a Kafka
broker (embedded, see `_kafka`), and two in-process workers on the same client:
- the project: `runtime.worker.create_worker(...)` on its own task queue,
  i.e. the real TransferActivities over the real repository, event store and snapshot store,
  with the relay, the projectors and the pattern detector in a followers' worker
  (`runtime.followers.create_followers_worker`) on a queue of their own, started as
  `run_followers` starts them, so they publish and project every transfer's events while
  both sides run. Unlike a deployment, where they have a process of their own, they share
  this process and its event loop (the figures compare with the earlier ones);
- baseline: a bare workflow running 5 no-op activities one after the other, with the same
  timeout and retry policy and the same `TransferMoney` argument, on a second task queue,
  in a worker with the same slots (activities, local activities, workflow tasks).

Each round starts N workflows at once and waits for all of them; rounds alternate sides
(order swapped every round). Figures are medians over rounds: workflows/s (N over the time
from the first start to the last result), p50/p99 latency (start call to result), the
process's RSS while the round is in flight, its CPU time per workflow, and the per-activity
execution and queue times (a worker interceptor) and database statements (engine events).
Afterwards a few workflows of each side run one at a time, for the unloaded latency.

Transfers move 1.00 among ACCOUNTS accounts with ample balance and daily limit, so every
transfer completes; the script checks that, and that the balances still add up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from temporalio import activity, workflow

# The bare workflow below lives in this module, which the workflow sandbox re-executes for
# every run: everything but the standard library and temporalio is passed through.
with workflow.unsafe.imports_passed_through():
    # A plain string operation: the sandbox refuses Path.resolve (file system access).
    _BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
    if _BENCH_DIR not in sys.path:
        sys.path.insert(0, _BENCH_DIR)
    from _activity_times import ActivityTimes, activity_summary, per_workflow_ms
    from _database_counts import DatabaseCounts, count_database, database_summary
    from _kafka import bench_broker
    from _rounds import Round, Sampler, Starter, run_round, side_figures
    from _support import bench_database, emit, median, percentile, progress, rounded, server_facts
    from temporalio import worker as temporal_worker
    from temporalio.client import Client
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    from adapters.database import create_engine
    from adapters.event_store import PostgresEventStore
    from adapters.temporal import connect
    from domain.accounts import Account
    from domain.repository import Repository
    from domain.transfers import TransferMoney
    from domain.users import User, email_key
    from projections.catalog import projection_names
    from runtime.config import Settings
    from runtime.embedded.temporal import EmbeddedTemporal
    from runtime.followers import create_followers_worker, handover, start_followers
    from runtime.ports import free_port
    from runtime.startup import freeze_startup_objects
    from runtime.worker import POOL_SIZE, create_worker
    from workflows import search_attributes
    from workflows.command_outcomes import COMMAND_RETRY, COMMAND_TIMEOUT
    from workflows.transfers import SAGA_TYPE, TransferOutcome, TransferSaga, transfer_workflow_id

CONCURRENT = 100
ROUNDS = 6
WARMUP = 20
SERIAL = 10
ACCOUNTS = 50
ACTIVITIES = 5
BALANCE = Decimal("1000000.00")
DAILY_LIMIT = Decimal("1000000.00")
AMOUNT = Decimal("1.00")
DAY = "2026-11-28"
GOAL_RATIO = 1.0


# ---------------------------------------------------------------------------------------
# Baseline: the same shape of work for Temporal, with nothing behind the activities.


@activity.defn(name="bench_noop")
async def noop(command: TransferMoney) -> int:
    """Does nothing; returns an int like the transfer steps."""
    return 0


@workflow.defn(name="BareSaga")
class BareSaga:
    """Five activities one after another, the same options as TransferSaga's steps."""

    @workflow.run
    async def run(self, command: TransferMoney) -> int:
        for _ in range(ACTIVITIES):
            await workflow.execute_activity(
                noop,
                command,
                start_to_close_timeout=COMMAND_TIMEOUT,
                retry_policy=COMMAND_RETRY,
            )
        return 0


# ---------------------------------------------------------------------------------------
# Fixture and the two sides.


async def open_accounts(repository: Repository, count: int) -> list[str]:
    """Users and their accounts, saved through the repository like any command would."""
    accounts: list[str] = []
    for _ in range(count):
        user = User(f"user-{uuid.uuid4()}")
        registered = user.register(f"{uuid.uuid4()}@example.com", "Bench Holder")
        await repository.save(
            user, lambda _: uuid.uuid4(), {}, claims=[email_key(registered.email)]
        )
        account = Account(f"account-{uuid.uuid4()}")
        account.open(user.id, "EUR", DAILY_LIMIT)
        account.deposit(BALANCE)
        await repository.save(account, lambda _: uuid.uuid4(), {})
        accounts.append(account.id)
    return accounts


class Sides:
    """Makes the workflows of each side: transfers, or bare workflows with the same input."""

    def __init__(
        self, client: Client, accounts: list[str], project_queue: str, baseline_queue: str
    ) -> None:
        self.client = client
        self.accounts = accounts
        self.project_queue = project_queue
        self.baseline_queue = baseline_queue
        self.random = random.Random(20261128)

    def command(self) -> TransferMoney:
        source, destination = self.random.sample(self.accounts, 2)
        return TransferMoney(f"transfer-{uuid.uuid4()}", source, destination, AMOUNT, DAY)

    def transfer(self) -> Starter:
        command = self.command()

        async def start() -> str:
            # Started as the API starts it: with the saga's search attributes.
            outcome: TransferOutcome = await self.client.execute_workflow(
                TransferSaga.run,
                command,
                id=transfer_workflow_id(command.transfer_id),
                task_queue=self.project_queue,
                search_attributes=search_attributes.at_start(
                    command.transfer_id,
                    [command.transfer_id, command.from_account_id, command.to_account_id],
                    SAGA_TYPE,
                ),
            )
            return outcome.status

        return start

    def bare(self) -> Starter:
        command = self.command()

        async def start() -> str:
            await self.client.execute_workflow(
                BareSaga.run,
                command,
                id=f"bare/{command.transfer_id}",
                task_queue=self.baseline_queue,
            )
            return "COMPLETED"

        return start

    def starters(self, side: str, count: int) -> list[Starter]:
        make = self.transfer if side == "project" else self.bare
        return [make() for _ in range(count)]


async def check_balances(repository: Repository, accounts: list[str]) -> Decimal:
    """Money is neither created nor lost: the balances add up to what was deposited."""
    total = Decimal("0.00")
    for account_id in accounts:
        total += (await repository.load(Account, account_id)).balance
    if total != BALANCE * len(accounts):
        raise RuntimeError(f"balances add up to {total}, not {BALANCE * len(accounts)}")
    return total


# ---------------------------------------------------------------------------------------


def quiet_core_logs() -> None:
    """The SDK core logs to stdout by default; send its errors to stderr, drop its warnings.

    Under load it warns once per activity that timed out while queued in the worker (those
    retries are counted in the result) and per slow workflow task.
    """
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
    telemetry = TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger("temporal_core")),
        )
    )
    Runtime.set_default(Runtime(telemetry=telemetry))


async def main() -> None:
    quiet_core_logs()
    directory = Path(tempfile.mkdtemp(prefix="sagaline-bench-temporal-"))
    server = EmbeddedTemporal(
        directory / "temporal", free_port(), free_port(), in_memory=True, headless=True
    )
    progress("starting the Temporal dev server (in memory)")
    await server.start()
    try:
        async with bench_database() as url, bench_broker() as bootstrap:
            await measure(url, server, bootstrap)
    finally:
        await server.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def measure(url: str, server: EmbeddedTemporal, bootstrap: str) -> None:
    engine = create_engine(url, pool_size=20)  # as runtime.worker.run_worker
    counts = DatabaseCounts()
    times = ActivityTimes()
    store = PostgresEventStore(engine)
    try:
        facts = await server_facts(engine)
        repository = Repository(store)
        accounts = await open_accounts(repository, ACCOUNTS)
        progress(f"{ACCOUNTS} accounts opened")

        plain = await connect(server.address, server.namespace)
        config = plain.config()
        config["interceptors"] = [times]
        client = Client(**config)
        project_queue = f"bench-saga-{uuid.uuid4().hex[:8]}"
        baseline_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            database_url=url,
            temporal_address=server.address,
            temporal_task_queue=project_queue,
            kafka_bootstrap=bootstrap,
            snapshot_every="",
        )
        sampler = Sampler(server.pid)
        rss_before_workers = sampler.rss()
        project_worker = create_worker(settings, client, engine, store)
        followers_worker = create_followers_worker(settings, client, engine, store)
        baseline_worker = temporal_worker.Worker(
            client,
            task_queue=baseline_queue,
            workflows=[BareSaga],
            activities=[noop],
            graceful_shutdown_timeout=timedelta(seconds=5),
            max_concurrent_activities=POOL_SIZE,
            max_concurrent_local_activities=POOL_SIZE,
        )
        sides = Sides(client, accounts, project_queue, baseline_queue)
        freeze_startup_objects()  # as runtime.worker.run_worker, for both workers
        async with project_worker, followers_worker, baseline_worker:
            await start_followers(
                client, settings.followers_task_queue(), projection_names(), handover(settings)
            )
            for side in ("project", "baseline"):
                warm = await run_round(side, sides.starters(side, WARMUP), sampler)
                progress(f"warm-up {side}: {warm.rate:.1f}/s")
            times.records.clear()
            count_database(engine, counts)

            rounds: dict[str, list[Round]] = {"project": [], "baseline": []}
            for index in range(ROUNDS):
                order = ["project", "baseline"] if index % 2 == 0 else ["baseline", "project"]
                for side in order:
                    result = await run_round(side, sides.starters(side, CONCURRENT), sampler)
                    rounds[side].append(result)
                    completed = Counter({"COMPLETED": CONCURRENT})
                    if side == "project" and result.statuses != completed:
                        raise RuntimeError(f"transfers ended {dict(result.statuses)}")
                progress(
                    f"round {index + 1}/{ROUNDS}: "
                    + ", ".join(
                        f"{s} {rounds[s][-1].rate:.1f}/s "
                        f"(p50 {1000 * percentile(rounds[s][-1].latencies, 0.5):.0f} ms)"
                        for s in order
                    )
                )
            transfers = CONCURRENT * ROUNDS
            loaded_records = list(times.records)
            loaded_db = database_summary(counts, transfers)

            # One at a time: latency without queueing, and the activities' unloaded cost.
            times.records.clear()
            serial: dict[str, list[float]] = {"project": [], "baseline": []}
            for _ in range(SERIAL):
                for side in ("project", "baseline"):
                    alone = await run_round(side, sides.starters(side, 1), sampler)
                    serial[side].append(alone.latencies[0])
            serial_records = list(times.records)
        await check_balances(repository, accounts)
        progress("every transfer completed; balances add up")
    finally:
        await store.close()
        await engine.dispose()

    project = side_figures(rounds["project"])
    baseline = side_figures(rounds["baseline"])
    ratio = project["rate"] / baseline["rate"]
    paired = median(
        [p.rate / b.rate for p, b in zip(rounds["project"], rounds["baseline"], strict=True)]
    )
    mib = 1024 * 1024
    emit(
        {
            "bench": "saga_throughput",
            "value": rounded(project["rate"]),
            "unit": "transfers/s",
            "baseline": rounded(baseline["rate"]),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "paired_ratio_median": rounded(paired),
            "p50_ms": rounded(project["p50_ms"]),
            "p99_ms": rounded(project["p99_ms"]),
            "baseline_p50_ms": rounded(baseline["p50_ms"]),
            "baseline_p99_ms": rounded(baseline["p99_ms"]),
            "serial_p50_ms": rounded(1000 * median(serial["project"])),
            "baseline_serial_p50_ms": rounded(1000 * median(serial["baseline"])),
            "memory": {
                "how": "in-process worker: psutil RSS of the bench process, sampled every 20 ms"
                " while a round's 100 workflows are in flight",
                "rss_before_workers_mib": round(rss_before_workers / mib, 1),
                "peak_rss_mib": round(project["peak_rss_mib"], 1),
                "rss_delta_in_flight_mib": round(project["rss_delta_in_flight_mib"], 1),
                "baseline_peak_rss_mib": round(baseline["peak_rss_mib"], 1),
                "baseline_rss_delta_in_flight_mib": round(baseline["rss_delta_in_flight_mib"], 1),
                "temporal_server_peak_rss_mib": round(project["temporal_server_peak_rss_mib"], 1),
            },
            "cpu_ms_per_workflow": {
                "process": rounded(project["cpu_ms_per_workflow"]),
                "baseline_process": rounded(baseline["cpu_ms_per_workflow"]),
                "temporal_server": rounded(project["temporal_server_cpu_ms_per_workflow"]),
                "baseline_temporal_server": rounded(
                    baseline["temporal_server_cpu_ms_per_workflow"]
                ),
            },
            "loop_lag_ms": {
                "max": rounded(project["loop_lag_max_ms"]),
                "mean": rounded(project["loop_lag_mean_ms"]),
                "baseline_max": rounded(baseline["loop_lag_max_ms"]),
                "baseline_mean": rounded(baseline["loop_lag_mean_ms"]),
            },
            "activities": activity_summary(loaded_records, project_queue, transfers),
            "baseline_activities": activity_summary(loaded_records, baseline_queue, transfers),
            "per_workflow": per_workflow_ms(loaded_records, project_queue, transfers),
            "baseline_per_workflow": per_workflow_ms(loaded_records, baseline_queue, transfers),
            "serial_activities": activity_summary(serial_records, project_queue, SERIAL),
            "serial_per_workflow": per_workflow_ms(serial_records, project_queue, SERIAL),
            "baseline_serial_per_workflow": per_workflow_ms(serial_records, baseline_queue, SERIAL),
            "database": loaded_db,
            "concurrent": CONCURRENT,
            "rounds": ROUNDS,
            "accounts": ACCOUNTS,
            "samples": {"project": project["samples"], "baseline": baseline["samples"]},
            "baseline_kind": "bare workflow, 5 sequential no-op activities, same options",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
