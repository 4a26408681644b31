"""TransferSaga on a real Temporal dev server and Postgres: every failure path keeps money."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from adapters.event_store import PostgresEventStore
from api.dispatch import send
from domain.accounts import Account
from domain.refusals import Refusal, RefusalKind
from domain.transfers import Transfer, TransferMoney, TransferStatus
from runtime.config import Settings
from tests.waiting import eventually
from tests.workflows.bank import TODAY, Bank, RefundBlocked, StepsHeld, cancellation_seen
from workflows.saga import SagaState, SagaStatus
from workflows.search_attributes import AGGREGATE_IDS, COMMAND_ID, SAGA_STATUS, SAGA_TYPE
from workflows.transfers import SAGA_TYPE as SAGA_TYPE_NAME
from workflows.transfers import TransferOutcome, TransferSaga, transfer_workflow_id

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def bank(store: PostgresEventStore, client: Client, task_queue: str) -> Bank:
    return Bank(store, client, task_queue)


async def test_a_transfer_moves_the_amount_and_completes(bank: Bank) -> None:
    source, destination = await bank.account("100.00"), await bank.account("5.00")
    handle = await bank.start(source, destination, "40.25")
    outcome = await handle.result()

    assert outcome.status == "COMPLETED"
    assert await bank.balance(source) == Decimal("59.75")
    assert await bank.balance(destination) == Decimal("45.25")
    state = await handle.query(TransferSaga.state)
    assert state.status is SagaStatus.COMPLETED
    assert state.completed_steps == [
        "begin",
        "reserve_daily_limit",
        "withdraw",
        "deposit",
        "complete",
    ]
    transfer = await bank.repository.load(Transfer, outcome.transfer_id)
    assert transfer.status is TransferStatus.COMPLETED
    assert outcome.position > 0


async def local_activities(handle: WorkflowHandle[TransferSaga, TransferOutcome]) -> list[str]:
    """The local activities the saga ran, in order, as its history's markers record them."""
    history = await handle.fetch_history()
    markers = [
        event.marker_recorded_event_attributes
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
    ]
    return [
        json.loads(marker.details["data"].payloads[0].data)["activity_type"]
        for marker in markers
        if marker.marker_name == "core_local_activity"
    ]


async def types(store: PostgresEventStore, stream_id: str) -> list[tuple[str, str | None]]:
    """A stream's event types, with the step a transfer's step event names."""
    return [(e.type, e.data.get("step")) for e in await store.read_stream(stream_id)]


async def test_a_transfer_runs_two_steps_that_record_what_the_five_recorded(
    bank: Bank, store: PostgresEventStore
) -> None:
    source, destination = await bank.account("100.00"), await bank.account("5.00")
    handle = await bank.start(source, destination, "40.25")
    outcome = await handle.result()

    assert await local_activities(handle) == ["begin_reserve_and_withdraw", "deposit_and_complete"]
    assert await types(store, outcome.transfer_id) == [
        ("TransferRequested", None),
        ("TransferStepCompleted", "reserve_daily_limit"),
        ("TransferStepCompleted", "withdraw"),
        ("TransferStepCompleted", "deposit"),
        ("TransferCompleted", None),
    ]
    assert (await types(store, source))[-2:] == [
        ("DailyLimitReserved", None),
        ("MoneyWithdrawn", None),
    ]
    assert (await types(store, destination))[-1:] == [("MoneyDeposited", None)]


@pytest.mark.parametrize("as_the_api_starts_it", [True, False])
async def test_operators_find_a_transfer_by_its_search_attributes(
    bank: Bank, as_the_api_starts_it: bool
) -> None:
    source, destination = await bank.account("10.00"), await bank.account()
    handle = await bank.start(source, destination, "1.00", with_attributes=as_the_api_starts_it)
    outcome = await handle.result()

    found = (await handle.describe()).typed_search_attributes
    assert found.get(SAGA_TYPE) == "TransferSaga"
    assert found.get(SAGA_STATUS) == "COMPLETED"
    assert found.get(COMMAND_ID) == outcome.transfer_id
    assert found.get(AGGREGATE_IDS) == [outcome.transfer_id, source, destination]


async def test_insufficient_funds_rejects_and_reserves_nothing(bank: Bank) -> None:
    source, destination = await bank.account("10.00", limit="50.00"), await bank.account()
    handle = await bank.start(source, destination, "30.00")
    outcome = await handle.result()

    assert (outcome.status, outcome.error_type) == ("REJECTED", "InsufficientFunds")
    # The withdrawal refused in the reservation's transaction: nothing was reserved, so
    # nothing is released, and the transfer's record holds the request and its rejection.
    assert await local_activities(handle) == ["begin_reserve_and_withdraw", "reject_transfer"]
    state = await handle.query(TransferSaga.state)
    assert state.compensations == []
    assert state.completed_steps == ["begin", "reserve_daily_limit"]
    assert state.error is not None and state.error.startswith("withdraw: ")
    transfer = await bank.repository.load(Transfer, outcome.transfer_id)
    assert transfer.status is TransferStatus.REJECTED
    account = await bank.repository.load(Account, source)
    assert account.balance == Decimal("10.00")
    assert account.reserved_on(TODAY) == 0
    assert await bank.balance(destination) == Decimal("100.00")


async def test_transfer_refunds_then_releases_when_the_destination_is_closed(bank: Bank) -> None:
    source, destination = await bank.account("100.00"), await bank.account("0")
    await bank.close(destination)
    handle = await bank.start(source, destination, "60.00")
    outcome = await handle.result()

    assert (outcome.status, outcome.error_type) == ("REJECTED", "AccountClosed")
    state = await handle.query(TransferSaga.state)
    assert state.status is SagaStatus.COMPENSATED
    assert state.compensations == ["withdraw", "reserve_daily_limit"]
    account = await bank.repository.load(Account, source)
    assert account.balance == Decimal("100.00")
    assert account.reserved_on(TODAY) == 0
    transfer = await bank.repository.load(Transfer, outcome.transfer_id)
    assert transfer.status is TransferStatus.REJECTED
    assert transfer.compensated == ["withdraw", "reserve_daily_limit"]


async def test_a_locked_owner_cannot_send_and_nothing_is_touched(bank: Bank) -> None:
    owner = await bank.user(locked=True)
    source, destination = await bank.account("100.00", owner=owner), await bank.account()
    handle = await bank.start(source, destination, "1.00")
    outcome = await handle.result()

    assert (outcome.status, outcome.error_type) == ("REJECTED", "UserLocked")
    assert await bank.balance(source) == Decimal("100.00")
    assert not (await bank.repository.load(Transfer, outcome.transfer_id)).exists
    state = await handle.query(TransferSaga.state)
    assert state.completed_steps == [] and state.compensations == []
    assert state.error is not None and state.error.startswith("begin: ")
    assert await local_activities(handle) == ["begin_reserve_and_withdraw"]


async def test_exceeding_the_daily_limit_is_rejected_before_any_money_moves(bank: Bank) -> None:
    source, destination = await bank.account("500.00", limit="100.00"), await bank.account()
    first = await bank.transfer(source, destination, "80.00")
    second = await bank.transfer(source, destination, "30.00")

    assert first.status == "COMPLETED"
    assert (second.status, second.error_type) == ("REJECTED", "DailyLimitExceeded")
    assert await bank.balance(source) == Decimal("420.00")


async def test_a_refused_reservation_ends_rejected_with_the_refusals_facts_on_record(
    bank: Bank, store: PostgresEventStore
) -> None:
    # begin's checks pass and the reservation refuses, in the same transaction: the request
    # is recorded with the rejection, as when they ran one after the other.
    source, destination = await bank.account("500.00", limit="20.00"), await bank.account()
    handle = await bank.start(source, destination, "30.00")
    outcome = await handle.result()

    assert (outcome.status, outcome.error_type) == ("REJECTED", "DailyLimitExceeded")
    refusal = Refusal.from_facts(outcome.details or {})
    assert refusal is not None and refusal.kind is RefusalKind.DAILY_LIMIT_EXCEEDED
    assert await local_activities(handle) == ["begin_reserve_and_withdraw", "reject_transfer"]
    state = await handle.query(TransferSaga.state)
    assert state.status is SagaStatus.COMPENSATED
    assert state.completed_steps == ["begin"] and state.compensations == []
    assert state.error is not None and state.error.startswith("reserve_daily_limit: ")
    assert state.error_details == outcome.details
    recorded = await store.read_stream(outcome.transfer_id)
    assert [e.type for e in recorded] == ["TransferRequested", "TransferRejected"]
    assert recorded[1].data["details"] == outcome.details
    assert outcome.position == recorded[1].position
    account = await bank.repository.load(Account, source)
    assert (account.balance, account.reserved_on(TODAY)) == (Decimal("500.00"), 0)


async def test_an_unknown_account_is_rejected(bank: Bank) -> None:
    source = await bank.account()
    outcome = await bank.transfer(source, f"account-{uuid.uuid4()}", "1.00")
    assert (outcome.status, outcome.error_type) == ("REJECTED", "AccountNotFound")
    assert outcome.position == 0
    assert not (await bank.repository.load(Transfer, outcome.transfer_id)).exists


@pytest.mark.parametrize("named", ["another account", "a user"])
async def test_a_transfer_id_naming_another_stream_is_refused_and_changes_nothing(
    bank: Bank, store: PostgresEventStore, named: str
) -> None:
    # The stream appeared after the API's check: the saga's first step refuses the id.
    source, destination = await bank.account("100.00"), await bank.account()
    taken = await bank.account("7.00") if named == "another account" else await bank.user()
    before = await store.read_stream(taken)
    handle = await bank.start(source, destination, "1.00", transfer_id=taken)
    outcome = await handle.result()

    assert (outcome.status, outcome.error_type) == ("REJECTED", "InvalidInput")
    assert outcome.reason == "transferId: is in use by another stream; choose another"
    assert outcome.details == {"field": "transferId"}
    assert outcome.position == 0
    state = await handle.query(TransferSaga.state)
    assert state.status is SagaStatus.COMPENSATED
    assert state.completed_steps == []
    assert await store.read_stream(taken) == before
    assert await bank.balance(source) == Decimal("100.00")
    assert await bank.balance(destination) == Decimal("100.00")


async def parked_transfer(bank: Bank) -> tuple[str, WorkflowHandle[TransferSaga, TransferOutcome]]:
    """A 25.00 transfer from a 100.00 account to a closed one, whose refund is blocked."""
    source, destination = await bank.account("100.00"), await bank.account("0")
    await bank.close(destination)
    RefundBlocked.blocked = True
    return source, await bank.start(source, destination, "25.00")


async def test_a_failing_compensation_parks_the_saga_until_an_operator_retries(
    store: PostgresEventStore, client: Client, blocked_refunds_queue: str
) -> None:
    bank = Bank(store, client, blocked_refunds_queue)
    source, handle = await parked_transfer(bank)

    state = await wait_for_status(handle, SagaStatus.NEEDS_ATTENTION)
    assert "refunds are blocked" in (state.error or "")
    assert await bank.balance(source) == Decimal("75.00")
    description = await handle.describe()
    assert description.typed_search_attributes.get(SAGA_STATUS) == "NEEDS_ATTENTION"

    answer = await handle.execute_update(TransferSaga.retry)
    assert (answer.status, answer.operator_retries) == (SagaStatus.COMPENSATING, 1)
    state = await wait_for_status(handle, SagaStatus.NEEDS_ATTENTION, retries=1)
    assert await bank.balance(source) == Decimal("75.00")

    RefundBlocked.blocked = False
    await handle.execute_update(TransferSaga.retry)
    outcome = await handle.result()

    assert outcome.status == "REJECTED"
    assert await bank.balance(source) == Decimal("100.00")
    final = await handle.query(TransferSaga.state)
    assert final.compensations == ["withdraw", "reserve_daily_limit"]
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(TransferSaga.retry)


HELD_TASK_TIMEOUT = timedelta(seconds=3)


async def cancel_during(
    step: str, bank: Bank, source: str, destination: str
) -> WorkflowHandle[TransferSaga, TransferOutcome]:
    """Start a transfer of 25.00, cancel it while `step` runs, then let the step finish.

    The held step keeps its workflow task open; the saga sees the cancellation when that task
    is renewed, twice over (once to take the cancellation in, once to end the task that did):
    a short task timeout makes that a few seconds, not the 16 of Temporal's default.
    """
    StepsHeld.hold(step)
    handle = await bank.start(source, destination, "25.00", task_timeout=HELD_TASK_TIMEOUT)
    await asyncio.wait_for(StepsHeld.started[step].wait(), timeout=30)
    await handle.cancel()
    await cancellation_seen(handle)  # the saga has reacted to the cancellation, step still held
    StepsHeld.gates[step].set()
    return handle


async def test_a_transfer_cancelled_while_withdrawing_refunds_after_the_withdrawal(
    store: PostgresEventStore, client: Client, held_steps_queue: str
) -> None:
    bank = Bank(store, client, held_steps_queue)
    source, destination = await bank.account("100.00"), await bank.account()

    handle = await cancel_during("withdraw", bank, source, destination)

    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert await bank.balance(source) == Decimal("100.00")
    assert await bank.balance(destination) == Decimal("100.00")
    state = await handle.query(TransferSaga.state)
    assert state.compensations == ["withdraw", "reserve_daily_limit"]
    transfer = await bank.repository.load(
        Transfer, (await handle.describe()).id[len("transfer/") :]
    )
    assert transfer.status is TransferStatus.REJECTED


async def test_a_transfer_cancelled_while_depositing_completes_and_refunds_nothing(
    store: PostgresEventStore, client: Client, held_steps_queue: str
) -> None:
    bank = Bank(store, client, held_steps_queue)
    source, destination = await bank.account("100.00"), await bank.account()

    handle = await cancel_during("deposit", bank, source, destination)

    outcome = await handle.result()
    assert outcome.status == "COMPLETED"
    assert await bank.balance(source) == Decimal("75.00")
    assert await bank.balance(destination) == Decimal("125.00")
    state = await handle.query(TransferSaga.state)
    assert state.status is SagaStatus.COMPLETED and state.compensations == []


async def test_a_parked_transfer_cancelled_by_an_operator_still_gives_the_money_back(
    store: PostgresEventStore, client: Client, blocked_refunds_queue: str
) -> None:
    bank = Bank(store, client, blocked_refunds_queue)
    source, handle = await parked_transfer(bank)
    await wait_for_status(handle, SagaStatus.NEEDS_ATTENTION)

    await handle.cancel()
    await cancellation_seen(handle)
    assert (await handle.query(TransferSaga.state)).status is SagaStatus.NEEDS_ATTENTION
    assert await bank.balance(source) == Decimal("75.00")
    RefundBlocked.blocked = False
    await handle.execute_update(TransferSaga.retry)
    outcome = await handle.result()

    assert (outcome.status, outcome.error_type) == ("REJECTED", "AccountClosed")
    assert await bank.balance(source) == Decimal("100.00")


async def test_a_transfer_started_as_the_api_starts_it_shows_running_while_it_runs(
    store: PostgresEventStore, client: Client, held_steps_queue: str, settings: Settings
) -> None:
    bank = Bank(store, client, held_steps_queue)
    source, destination = await bank.account(), await bank.account()
    transfer_id = f"transfer-{uuid.uuid4()}"
    command = TransferMoney(transfer_id, source, destination, Decimal("1.00"), TODAY)
    api = SimpleNamespace(
        services=SimpleNamespace(
            temporal=client,
            # The held step keeps the workflow task open: the query below waits for its
            # renewal, at 80 % of the task timeout the API starts the saga with.
            settings=settings.model_copy(
                update={
                    "temporal_task_queue": held_steps_queue,
                    "workflow_task_timeout_seconds": HELD_TASK_TIMEOUT.total_seconds(),
                }
            ),
        )
    )
    StepsHeld.hold("withdraw")
    sending = asyncio.create_task(
        send(
            api,  # type: ignore[arg-type]
            TransferSaga.run,
            command,
            workflow_id=transfer_workflow_id(transfer_id),
            command_id=transfer_id,
            aggregate_ids=[transfer_id, source, destination],
            summary="test transfer",
            result_type=TransferOutcome,
            saga_type=SAGA_TYPE_NAME,
        )
    )
    await asyncio.wait_for(StepsHeld.started["withdraw"].wait(), timeout=30)
    handle = client.get_workflow_handle_for(TransferSaga.run, transfer_workflow_id(transfer_id))

    described = await handle.describe()
    running = described.typed_search_attributes
    state = await handle.query(TransferSaga.state)
    StepsHeld.gates["withdraw"].set()
    outcome = await asyncio.wait_for(sending, 60)
    finished = (await handle.describe()).typed_search_attributes

    task_timeout = described.raw_description.execution_config.default_workflow_task_timeout
    assert task_timeout.ToTimedelta() == HELD_TASK_TIMEOUT
    assert (state.status, state.current_step) == (
        SagaStatus.RUNNING,
        "begin + reserve_daily_limit + withdraw",
    )
    assert running.get(SAGA_STATUS) == state.status.value
    assert running.get(SAGA_TYPE) == "TransferSaga"
    assert outcome is not None and outcome.status == "COMPLETED"
    assert finished.get(SAGA_STATUS) == SagaStatus.COMPLETED.value


async def wait_for_status(
    handle: WorkflowHandle[TransferSaga, TransferOutcome], status: SagaStatus, retries: int = 0
) -> SagaState:
    async def reached() -> bool:
        state = await handle.query(TransferSaga.state)
        return state.status is status and state.operator_retries == retries

    await eventually(reached, 60, f"saga reached {status} after {retries} retries")
    return await handle.query(TransferSaga.state)
