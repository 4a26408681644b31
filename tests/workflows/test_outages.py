"""Failures delay work but never lose or duplicate it: a killed worker, a database outage."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from activities.accounts import AccountActivities
from activities.transfers import TransferActivities
from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.schema import events
from domain.accounts import DepositMoney
from domain.repository import Repository
from domain.transfers import TransferMoney
from runtime.config import Settings
from runtime.embedded.process import ChildProcess
from runtime.launcher import PROJECT_ROOT, sagaline_process
from tests.proxy import CuttableProxy
from tests.waiting import eventually
from tests.workflows.bank import Bank, assert_money_moved_as_told, expected_balances, movements
from workflows.accounts import DepositMoneyWorkflow
from workflows.saga import SagaStatus
from workflows.transfers import TransferSaga

# A workflow task that its worker never answers (it was killed, or a step kept the task open
# while it retried) is handed on at this timeout, or renewed at 80% of it: shorter than
# Temporal's default 10 s so the tests see that in seconds, with room for a loaded machine.
TASK_TIMEOUT = timedelta(seconds=5)
# A step retrying on a cut database keeps its task open; a query waits for its renewal.
RETRYING_TASK_TIMEOUT = timedelta(seconds=3)
# The failure bound of the deposit's worker: fewer attempts than the default to retry past.
DEPOSIT_ATTEMPTS = 2


def worker_process(settings: Settings, task_queue: str, log: Path) -> ChildProcess:
    """A `sagaline worker` on its own task queue, against the session's services."""
    environment = {
        **os.environ,
        "SAGALINE_DATABASE_URL": settings.require_database_url(),
        "SAGALINE_TEMPORAL_ADDRESS": settings.require_temporal_address(),
        "SAGALINE_KAFKA_BOOTSTRAP": settings.require_kafka_bootstrap(),
        "SAGALINE_TEMPORAL_TASK_QUEUE": task_queue,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    return sagaline_process("worker", log, environment)


@pytest.fixture
async def worker_processes() -> AsyncIterator[list[ChildProcess]]:
    processes: list[ChildProcess] = []
    yield processes
    for process in processes:
        await process.stop(20.0)


async def test_killing_the_worker_mid_transfers_loses_and_duplicates_nothing(
    settings: Settings,
    store: PostgresEventStore,
    engine: AsyncEngine,
    client: Client,
    worker_processes: list[ChildProcess],
    tmp_path: Path,
) -> None:
    task_queue = f"kill-{uuid.uuid4()}"
    log = tmp_path / "worker.log"
    bank = Bank(store, client, task_queue)
    accounts = [await bank.account("1000.00") for _ in range(10)]
    before = {a: await bank.balance(a) for a in accounts}
    worker_processes.append(worker_process(settings, task_queue, log))
    worker_processes[-1].start()

    plans = [(accounts[n % 10], accounts[(n * 3 + 1) % 10], f"{n + 1}.00") for n in range(50)]
    handles = [await bank.start(*plan, task_timeout=TASK_TIMEOUT) for plan in plans]
    transfer_ids = [h.id[len("transfer/") :] for h in handles]

    # Kill it as soon as money has started to move: it is then in the middle of the transfers.
    async def money_moved() -> bool:
        return any(kind == "MoneyDeposited" for kind, _ in await movements(engine, transfer_ids))

    await eventually(money_moved, 120, "a transfer deposited its money")
    await worker_processes[0].kill()
    descriptions = await asyncio.gather(*(h.describe() for h in handles))
    running = [d for d in descriptions if d.status == WorkflowExecutionStatus.RUNNING]
    assert running, "every transfer finished before the worker was killed"
    worker_processes.append(worker_process(settings, task_queue, log))
    worker_processes[-1].start()

    outcomes = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 180)

    after = {a: await bank.balance(a) for a in accounts}
    assert sum(after.values()) == sum(before.values())
    assert after == expected_balances(before, plans, outcomes)
    assert_money_moved_as_told(outcomes, await movements(engine, transfer_ids))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    events.c.type,
                    events.c.data["transfer_id"].astext,
                    events.c.data["step"].astext,
                ).where(events.c.data["transfer_id"].astext.in_(transfer_ids))
            )
        ).all()
    per_step = Counter(tuple(row) for row in rows)
    assert per_step and max(per_step.values()) == 1, "an event was appended twice"


@pytest.fixture
async def database_behind_proxy(
    database_url: str,
) -> AsyncIterator[tuple[CuttableProxy, AsyncEngine]]:
    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    engine = create_engine(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )
    yield proxy, engine
    await engine.dispose()
    await proxy.stop()


class BeginAttemptsCounted(TransferActivities):
    """Real transfer activities that count the attempts of each saga's first step."""

    attempts: ClassVar[dict[str, int]] = {}

    @activity.defn(name="begin_transfer")
    async def begin_transfer(self, command: TransferMoney) -> int:  # type: ignore[override]
        info = activity.info()
        BeginAttemptsCounted.attempts[str(info.workflow_id)] = info.attempt
        return await super().begin_transfer(command)

    @activity.defn(name="begin_and_reserve")
    async def begin_and_reserve(self, command: TransferMoney) -> int:  # type: ignore[override]
        info = activity.info()
        BeginAttemptsCounted.attempts[str(info.workflow_id)] = info.attempt
        return await super().begin_and_reserve(command)

    @activity.defn(name="begin_reserve_and_withdraw")
    async def begin_reserve_and_withdraw(self, command: TransferMoney) -> int:  # type: ignore[override]
        info = activity.info()
        BeginAttemptsCounted.attempts[str(info.workflow_id)] = info.attempt
        return await super().begin_reserve_and_withdraw(command)


async def test_a_transfer_completes_after_the_database_was_unreachable_for_several_attempts(
    store: PostgresEventStore,
    client: Client,
    database_behind_proxy: tuple[CuttableProxy, AsyncEngine],
) -> None:
    proxy, proxied_engine = database_behind_proxy
    task_queue = f"outage-{uuid.uuid4()}"
    activities = BeginAttemptsCounted(Repository(PostgresEventStore(proxied_engine)))
    bank = Bank(store, client, task_queue)
    source, destination = await bank.account("100.00"), await bank.account("0")
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[TransferSaga],
        activities=activities.all(),
    )
    async with worker:
        proxy.cut()
        handle = await bank.start(source, destination, "30.00", task_timeout=RETRYING_TASK_TIMEOUT)

        # The steps are local activities: their attempts are seen by the worker, not the server.
        async def failed_twice_on_the_cut_database() -> bool:
            return BeginAttemptsCounted.attempts.get(handle.id, 0) >= 3

        await eventually(failed_twice_on_the_cut_database, 60, "a step retried twice")
        state = await handle.query(TransferSaga.state)
        assert state.status is SagaStatus.RUNNING and state.completed_steps == []
        assert await bank.balance(source) == Decimal("100.00")
        proxy.restore()
        outcome = await asyncio.wait_for(handle.result(), 60)

    assert outcome.status == "COMPLETED"
    assert await bank.balance(source) == Decimal("70.00")
    assert await bank.balance(destination) == Decimal("30.00")


async def test_a_deposit_is_retried_past_the_failure_bound_while_the_database_is_unreachable(
    store: PostgresEventStore,
    client: Client,
    database_behind_proxy: tuple[CuttableProxy, AsyncEngine],
) -> None:
    proxy, proxied_engine = database_behind_proxy
    task_queue = f"outage-{uuid.uuid4()}"
    bank = Bank(store, client, task_queue)
    account = await bank.account("0")
    activities = AccountActivities(Repository(PostgresEventStore(proxied_engine)), DEPOSIT_ATTEMPTS)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[DepositMoneyWorkflow],
        activities=[activities.deposit_money],
    )
    async with worker:
        proxy.cut()
        handle = await client.start_workflow(
            DepositMoneyWorkflow.run,
            DepositMoney(str(uuid.uuid4()), account, Decimal("12.00")),
            id=f"outage-deposit/{uuid.uuid4()}",
            task_queue=task_queue,
        )

        async def retried_past_the_bound() -> bool:
            pending = (await handle.describe()).raw_description.pending_activities
            return any(activity.attempt > DEPOSIT_ATTEMPTS + 1 for activity in pending)

        await eventually(retried_past_the_bound, 120, "the deposit retried past the bound")
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        assert await bank.balance(account) == Decimal("0.00")
        proxy.restore()
        outcome = await asyncio.wait_for(handle.result(), 60)

    assert outcome.failure is None and outcome.result is not None
    assert await bank.balance(account) == Decimal("12.00")
