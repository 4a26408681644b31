"""Determinism: recorded histories of every workflow type replay against today's code.

The histories in tests/workflows/histories/ were recorded from real runs. A change to workflow
code that would break running workflows fails here; such changes go through
`workflow.patched`. To record new histories (after adding a workflow type or a patched
branch), record them into an empty directory:
SAGALINE_RECORD_HISTORIES=/tmp/new-histories pytest tests/workflows/test_replay.py
and copy the ones you need into histories/ under new names. The recorder never overwrites a
history already recorded: a history of older code is what proves today's code replays it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from adapters.event_store import PostgresEventStore
from adapters.payloads import data_converter
from domain.accounts import CloseAccount, DepositMoney, OpenAccount, WithdrawMoney
from domain.refusals import Refusal, RefusalKind
from domain.users import (
    ChangeUserEmail,
    LockUser,
    RecordLoginAttempt,
    RegisterUser,
    UnlockUser,
)
from runtime.followers import FOLLOWER_WORKFLOWS
from runtime.worker import WORKFLOWS
from tests.waiting import eventually
from tests.workflows.bank import Bank, RefundBlocked, cancellation_seen
from tests.workflows.test_transfer_saga import cancel_during, wait_for_status
from workflows.accounts import (
    CloseAccountWorkflow,
    DepositMoneyWorkflow,
    OpenAccountWorkflow,
    WithdrawMoneyWorkflow,
)
from workflows.followers import ProjectorWorkflow, RebuildProjectionWorkflow, RelayWorkflow
from workflows.patterns import PatternDetectorWorkflow
from workflows.saga import SagaStatus
from workflows.transfers import TransferSaga
from workflows.users import (
    ChangeUserEmailWorkflow,
    LockUserWorkflow,
    RecordLoginAttemptWorkflow,
    RegisterUserWorkflow,
    UnlockUserWorkflow,
)

HISTORIES = Path(__file__).parent / "histories"
RECORD_INTO = os.environ.get("SAGALINE_RECORD_HISTORIES")


async def test_recorded_histories_of_every_workflow_type_replay() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    recorded_types = set()
    # In the sandbox with nothing of ours passed through, although the worker runs the
    # workflows unsandboxed: a call to something non-deterministic on any recorded path, in a
    # workflow or a helper it shares, fails here.
    replayer = Replayer(
        workflows=[*WORKFLOWS, *FOLLOWER_WORKFLOWS],
        data_converter=data_converter(),
        workflow_runner=SandboxedWorkflowRunner(),
    )
    for path in files:
        document = json.loads(path.read_text())
        history = WorkflowHistory.from_json(document["workflow_id"], document["history"])
        await replayer.replay_workflow(history)
        recorded_types.add(document["workflow_type"])
    assert recorded_types == {w.__name__ for w in [*WORKFLOWS, *FOLLOWER_WORKFLOWS]}


# Histories of transfers whose steps ran as local activities (since STEPS_RUN_LOCALLY).
LOCAL_STEP_HISTORIES = (
    "transfer_completed_steps_local",
    "transfer_completed_as_the_api_starts_it_steps_local",
    "transfer_compensated_steps_local",
    "transfer_refused_locked_owner_steps_local",
    "transfer_parked_then_retried_steps_local",
    "transfer_cancelled_while_parked_steps_local",
    "transfer_cancelled_during_withdraw_steps_local",
    "transfer_cancelled_during_deposit_steps_local",
    "transfer_refused_with_figures",
)


# Histories of transfers whose steps share transactions (since STEPS_SHARE_TRANSACTIONS).
SHARED_STEP_HISTORIES = (
    "transfer_completed_steps_shared",
    "transfer_completed_as_the_api_starts_it_steps_shared",
    "transfer_compensated_steps_shared",
    "transfer_refused_locked_owner_steps_shared",
    "transfer_refused_daily_limit_steps_shared",
    "transfer_refused_with_figures_steps_shared",
    "transfer_parked_then_retried_steps_shared",
    "transfer_cancelled_while_parked_steps_shared",
    "transfer_cancelled_during_withdraw_steps_shared",
    "transfer_cancelled_during_deposit_steps_shared",
)


# Histories of transfers whose withdrawal shares the first transaction (since
# WITHDRAWAL_SHARES_TRANSACTION).
WITHDRAWAL_SHARED_HISTORIES = (
    "transfer_completed_withdrawal_shared",
    "transfer_completed_as_the_api_starts_it_withdrawal_shared",
    "transfer_compensated_withdrawal_shared",
    "transfer_refused_locked_owner_withdrawal_shared",
    "transfer_refused_daily_limit_withdrawal_shared",
    "transfer_refused_with_figures_withdrawal_shared",
    "transfer_parked_then_retried_withdrawal_shared",
    "transfer_cancelled_while_parked_withdrawal_shared",
    "transfer_cancelled_during_withdraw_withdrawal_shared",
    "transfer_cancelled_during_deposit_withdrawal_shared",
)


def local_activities(name: str) -> list[str]:
    """The local activities a recorded history ran, in order."""
    events = json.loads((HISTORIES / f"{name}.json").read_text())["history"]["events"]
    return [
        decoded(marker["details"]["data"])["activity_type"]  # type: ignore[index]
        for marker in (
            event["markerRecordedEventAttributes"]
            for event in events
            if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
        )
        if marker["markerName"] == "core_local_activity"
    ]


@pytest.mark.parametrize("name", SHARED_STEP_HISTORIES)
def test_transfers_with_shared_steps_are_among_the_recorded_histories(name: str) -> None:
    ran = local_activities(name)

    assert ran[0] == "begin_and_reserve"
    assert not {"begin_transfer", "reserve_daily_limit", "deposit", "complete_transfer"} & set(ran)


@pytest.mark.parametrize("name", WITHDRAWAL_SHARED_HISTORIES)
def test_transfers_withdrawing_in_the_first_transaction_are_among_the_recorded_histories(
    name: str,
) -> None:
    ran = local_activities(name)

    assert ran[0] == "begin_reserve_and_withdraw"
    assert not {"begin_and_reserve", "reserve_daily_limit", "withdraw"} & set(ran)


def test_a_transfer_refused_by_its_withdrawal_in_the_first_transaction_is_recorded() -> None:
    # The withdrawal refused in the reservation's transaction: nothing to release.
    assert local_activities("transfer_refused_with_figures_withdrawal_shared") == [
        "begin_reserve_and_withdraw",
        "reject_transfer",
    ]


def test_a_transfer_refused_by_its_reservation_is_among_the_recorded_histories() -> None:
    # begin's checks passed, the reservation refused: the rejection is recorded.
    assert local_activities("transfer_refused_daily_limit_steps_shared") == [
        "begin_and_reserve",
        "reject_transfer",
    ]
    assert local_activities("transfer_refused_locked_owner_steps_shared") == ["begin_and_reserve"]


@pytest.mark.parametrize(
    "name", LOCAL_STEP_HISTORIES + SHARED_STEP_HISTORIES + WITHDRAWAL_SHARED_HISTORIES
)
def test_transfers_with_local_steps_are_among_the_recorded_histories(name: str) -> None:
    events = json.loads((HISTORIES / f"{name}.json").read_text())["history"]["events"]
    kinds = [event["eventType"] for event in events]
    markers = [
        event["markerRecordedEventAttributes"]["markerName"]
        for event in events
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    ]

    assert "core_local_activity" in markers
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in kinds


def decoded(payloads: dict[str, list[dict[str, str]]]) -> object:
    """The value of a history's first JSON payload."""
    return json.loads(base64.b64decode(payloads["payloads"][0]["data"]))


def test_a_transfer_refused_with_figures_in_a_later_step_is_among_the_recorded_histories() -> None:
    document = json.loads((HISTORIES / "transfer_refused_with_figures.json").read_text())
    events = document["history"]["events"]
    markers = [
        event["markerRecordedEventAttributes"]
        for event in events
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    ]
    steps = [
        decoded(marker["details"]["data"])["activity_type"]  # type: ignore[index]
        for marker in markers
        if marker["markerName"] == "core_local_activity"
    ]
    (outcome,) = (
        decoded(event["workflowExecutionCompletedEventAttributes"]["result"])
        for event in events
        if event["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    )

    # Refused by the withdrawal, after the reservation it undoes, and recorded as rejected
    # with the refusal's facts.
    assert steps[-3:] == ["withdraw", "release_daily_limit", "reject_transfer"]
    assert isinstance(outcome, dict)
    assert outcome["status"] == "REJECTED"
    refusal = Refusal.from_facts(outcome["details"])
    assert refusal is not None
    assert refusal.kind is RefusalKind.INSUFFICIENT_FUNDS


@pytest.mark.skipif(
    not RECORD_INTO, reason="set SAGALINE_RECORD_HISTORIES to a directory to record histories"
)
@pytest.mark.usefixtures("worker", "followers")
async def test_record_histories(
    store: PostgresEventStore,
    client: Client,
    task_queue: str,
    followers_queue: str,
    blocked_refunds_queue: str,
    held_steps_queue: str,
) -> None:
    bank = Bank(store, client, task_queue)
    register = await client.start_workflow(
        RegisterUserWorkflow.run,
        RegisterUser("history-1", "user-history-1", "history@example.com", "History", "hash"),
        id="register-user/history-1",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    await register.result()
    await save(register, "register_user")

    account = "account-history-1"
    for name, workflow, command in (
        (
            "change_user_email",
            ChangeUserEmailWorkflow,
            ChangeUserEmail("history-2", "user-history-1", "history2@example.com"),
        ),
        ("lock_user", LockUserWorkflow, LockUser("history-3", "user-history-1", "history")),
        ("unlock_user", UnlockUserWorkflow, UnlockUser("history-4", "user-history-1")),
        (
            "record_login_attempt",
            RecordLoginAttemptWorkflow,
            RecordLoginAttempt("history-9", "user-history-1", False, "wrong password"),
        ),
        (
            "open_account",
            OpenAccountWorkflow,
            OpenAccount("history-5", account, "user-history-1", "EUR"),
        ),
        ("deposit_money", DepositMoneyWorkflow, DepositMoney("history-6", account, Decimal(5))),
        ("withdraw_money", WithdrawMoneyWorkflow, WithdrawMoney("history-7", account, Decimal(5))),
        ("close_account", CloseAccountWorkflow, CloseAccount("history-8", account)),
    ):
        handle = await client.start_workflow(
            workflow.run,  # type: ignore[attr-defined]
            command,
            id=f"{name}/{command.command_id}",
            task_queue=task_queue,
        )
        await handle.result()
        await save(handle, name)

    source, destination = await bank.account("100.00"), await bank.account("0")
    completed = await bank.start(source, destination, "10.00")
    await completed.result()
    await save(completed, "transfer_completed")

    as_the_api_starts_it = await bank.start(source, destination, "1.00", with_attributes=True)
    await as_the_api_starts_it.result()
    await save(as_the_api_starts_it, "transfer_completed_as_the_api_starts_it")

    closed = await bank.account("0")
    await bank.close(closed)
    compensated = await bank.start(source, closed, "10.00")
    await compensated.result()
    await save(compensated, "transfer_compensated")

    locked = await bank.account("50.00", owner=await bank.user(locked=True))
    refused = await bank.start(locked, destination, "1.00")
    await refused.result()
    await save(refused, "transfer_refused_locked_owner")

    short = await bank.account("5.00")
    refused_with_figures = await bank.start(short, destination, "50.00")
    await refused_with_figures.result()
    await save(refused_with_figures, "transfer_refused_with_figures")

    limited = await bank.account("500.00", limit="20.00")
    refused_by_the_limit = await bank.start(limited, destination, "30.00")
    await refused_by_the_limit.result()
    await save(refused_by_the_limit, "transfer_refused_daily_limit")

    parked_bank = Bank(store, client, blocked_refunds_queue)
    RefundBlocked.blocked = True
    parked = await parked_bank.start(source, closed, "5.00")
    await wait_for_status(parked, SagaStatus.NEEDS_ATTENTION)
    RefundBlocked.blocked = False
    await parked.execute_update(TransferSaga.retry)
    await parked.result()
    await save(parked, "transfer_parked_then_retried")

    RefundBlocked.blocked = True
    parked_then_cancelled = await parked_bank.start(source, closed, "5.00")
    await wait_for_status(parked_then_cancelled, SagaStatus.NEEDS_ATTENTION)
    await parked_then_cancelled.cancel()
    await cancellation_seen(parked_then_cancelled)
    RefundBlocked.blocked = False
    with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
        await parked_then_cancelled.execute_update(TransferSaga.retry)
    with contextlib.suppress(WorkflowFailureError):
        await parked_then_cancelled.result()
    await save(parked_then_cancelled, "transfer_cancelled_while_parked")

    held_bank = Bank(store, client, held_steps_queue)
    for step in ("withdraw", "deposit"):
        cancelled = await cancel_during(step, held_bank, source, destination)
        with contextlib.suppress(WorkflowFailureError):
            await cancelled.result()
        await save(cancelled, f"transfer_cancelled_during_{step}")

    rebuild = await client.start_workflow(
        RebuildProjectionWorkflow.run,
        "transfers",
        id="history-rebuild",
        task_queue=followers_queue,
    )
    await rebuild.result()
    await save(rebuild, "rebuild_projection")

    for workflow, name, arg in (
        (RelayWorkflow, "relay", None),
        (ProjectorWorkflow, "projector_users", "users"),
        (PatternDetectorWorkflow, "pattern_detector", None),
    ):
        handle: WorkflowHandle[object, None] = await client.start_workflow(
            workflow.run,  # type: ignore[attr-defined]
            *([] if arg is None else [arg]),
            id=f"history-{name}",
            task_queue=followers_queue,
        )
        started = partial(has_started_an_activity, handle)
        await eventually(started, 60, f"{name} started its activity")
        await handle.terminate()
        await save(handle, name)


async def has_started_an_activity(handle: WorkflowHandle[object, None]) -> bool:
    started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    pending = (await handle.describe()).raw_description.pending_activities
    return any(activity.state == started for activity in pending)


async def save(handle: WorkflowHandle[object, object], name: str) -> None:
    history = await handle.fetch_history()
    description = await handle.describe()
    document = {
        "workflow_id": handle.id,
        "workflow_type": description.workflow_type,
        "history": json.loads(history.to_json()),
    }
    write_history(document, name, Path(RECORD_INTO or HISTORIES))


def write_history(document: dict[str, object], name: str, directory: Path) -> None:
    """Write a recorded history as `<name>.json`, refusing to replace one that exists."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    try:
        with path.open("x") as file:
            file.write(json.dumps(document, indent=1))
    except FileExistsError:
        raise FileExistsError(
            f"{path.name} is already recorded; histories of older code are kept, record a new one"
        ) from None


def test_the_recorder_refuses_to_overwrite_a_recorded_history(tmp_path: Path) -> None:
    existing = tmp_path / "register_user.json"
    existing.write_text("the history recorded from older code")
    document: dict[str, object] = {"workflow_type": "RegisterUserWorkflow", "history": {}}

    with pytest.raises(FileExistsError, match=r"register_user\.json is already recorded"):
        write_history(document, "register_user", tmp_path)
    write_history(document, "register_user_again", tmp_path)

    assert existing.read_text() == "the history recorded from older code"
    assert json.loads((tmp_path / "register_user_again.json").read_text()) == document
