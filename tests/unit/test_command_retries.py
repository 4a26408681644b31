"""A command sent under a used id joins the first one only if it asks for the same thing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.requests import Request
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

import domain.accounts
import domain.transfers
import domain.users
from adapters.payloads import data_converter
from api.auth import Caller, Role
from api.context import Context, Services
from api.dispatch import send
from api.retries import CHOSEN_BY_CALLER, CommandIdReused, ensure_retry
from domain.accounts import DepositMoney, OpenAccount
from domain.events import DomainEvent
from domain.transfers import TransferMoney
from runtime.config import Settings
from workflows.accounts import DepositMoneyWorkflow


class StartedWith:
    """A Temporal client knowing one workflow, started with `command`."""

    def __init__(self, command: object) -> None:
        self.command = command

    def get_workflow_handle(self, workflow_id: str) -> StartedWith:
        return self

    async def fetch_history_events(self, page_size: int) -> AsyncIterator[HistoryEvent]:
        event = HistoryEvent()
        payloads = await data_converter().encode([self.command])
        event.workflow_execution_started_event_attributes.input.payloads.extend(payloads)
        yield event


def temporal(command: object) -> Client:
    return cast(Client, cast(Any, StartedWith(command)))


async def test_the_same_request_again_is_a_retry_whoever_sends_it_and_when() -> None:
    first = TransferMoney("t", "a", "b", Decimal("5.00"), "2026-12-01", "client:1", 8)
    again = TransferMoney("t", "a", "b", Decimal("5"), "2026-12-02", "client:2", 3)
    await ensure_retry(temporal(first), "transfer/t", again)


@pytest.mark.parametrize(
    "other",
    [
        TransferMoney("t", "a", "b", Decimal("5.01"), "2026-12-01"),
        TransferMoney("t", "a", "c", Decimal("5.00"), "2026-12-01"),
        TransferMoney("t", "c", "b", Decimal("5.00"), "2026-12-01"),
    ],
)
async def test_another_amount_or_account_under_the_id_is_not_a_retry(other: object) -> None:
    first = TransferMoney("t", "a", "b", Decimal("5.00"), "2026-12-01")
    with pytest.raises(CommandIdReused) as reused:
        await ensure_retry(temporal(first), "transfer/t", other)
    assert reused.value.first["from_account_id"] == first.from_account_id
    assert reused.value.first["to_account_id"] == first.to_account_id


async def test_a_deposit_of_another_amount_under_the_id_is_not_a_retry() -> None:
    first = DepositMoney("c", "account-1", Decimal("10.00"))
    await ensure_retry(
        temporal(first), "deposit-money/c", DepositMoney("c", "account-1", Decimal(10))
    )
    with pytest.raises(CommandIdReused):
        await ensure_retry(
            temporal(first), "deposit-money/c", DepositMoney("c", "account-1", Decimal(25))
        )


async def test_an_input_recorded_by_another_version_compares_by_what_both_ask_for() -> None:
    recorded = {"command_id": "c", "account_id": "account-1", "amount": "10.00", "note": "x"}
    await ensure_retry(
        temporal(recorded), "deposit-money/c", DepositMoney("c", "account-1", Decimal(10))
    )


@pytest.mark.parametrize(
    "recorded",
    [
        {"command_id": "c", "account_id": "account-1", "amount": {"units": 10}},
        {"command_id": "c", "account_id": "account-1"},
        ["c", "account-1", "10.00"],
    ],
)
async def test_an_input_that_does_not_read_as_this_versions_command_is_not_a_retry(
    recorded: object,
) -> None:
    with pytest.raises(CommandIdReused):
        await ensure_retry(
            temporal(recorded), "deposit-money/c", DepositMoney("c", "account-1", Decimal(10))
        )


class SlowHistory(StartedWith):
    """A workflow already started under the id, whose history does not come."""

    async def start_workflow(self, run: Any, command: Any, **options: Any) -> None:
        raise WorkflowAlreadyStartedError(options["id"], "DepositMoneyWorkflow")

    async def fetch_history_events(self, page_size: int) -> AsyncIterator[HistoryEvent]:
        await asyncio.Event().wait()
        yield HistoryEvent()


async def test_a_retry_whose_history_does_not_come_in_the_command_timeout_is_pending() -> None:
    command = DepositMoney("c", "account-1", Decimal(10))
    services = SimpleNamespace(
        settings=Settings(command_timeout_seconds=0.2), temporal=SlowHistory(command)
    )
    context = Context(
        services=cast(Services, services),
        request=Request({"type": "http", "method": "POST", "headers": []}),
        caller=Caller(Role.CLIENT, "test"),
    )
    sent = send(
        context,
        DepositMoneyWorkflow.run,
        command,
        workflow_id="deposit-money/c",
        command_id="c",
        aggregate_ids=["account-1"],
        summary="Deposit",
    )
    assert await asyncio.wait_for(sent, timeout=5) is None


def test_every_command_names_the_fields_its_caller_chooses() -> None:
    commands = {
        kind
        for module in (domain.accounts, domain.transfers, domain.users)
        for kind in vars(module).values()
        if dataclasses.is_dataclass(kind)
        and isinstance(kind, type)
        and not issubclass(kind, DomainEvent)
        and kind.__module__ == module.__name__
    }
    assert commands == set(CHOSEN_BY_CALLER)
    for kind, chosen in CHOSEN_BY_CALLER.items():
        assert chosen <= {field.name for field in dataclasses.fields(kind)}, kind


async def test_an_account_opened_again_after_its_default_daily_limit_changed_is_a_retry() -> None:
    first = OpenAccount("c", "account-1", "user-1", "EUR", daily_limit=Decimal("1000.00"))
    again = OpenAccount("c", "account-1", "user-1", "EUR", daily_limit=Decimal("5000.00"))
    await ensure_retry(temporal(first), "open-account/c", again)
    with pytest.raises(CommandIdReused):
        await ensure_retry(
            temporal(first), "open-account/c", OpenAccount("c", "account-1", "user-1", "USD")
        )
