"""A command sent under a used id joins the first one only if it asks for the same thing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast

import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.retries import CommandIdReused, ensure_retry
from domain.accounts import DepositMoney
from domain.transfers import TransferMoney


class StartedWith:
    """A Temporal client knowing one workflow, started with `command`."""

    data_converter = pydantic_data_converter

    def __init__(self, command: object) -> None:
        self.command = command

    def get_workflow_handle(self, workflow_id: str) -> StartedWith:
        return self

    async def fetch_history_events(self, page_size: int) -> AsyncIterator[HistoryEvent]:
        event = HistoryEvent()
        payloads = await self.data_converter.encode([self.command])
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
    assert reused.value.first == first


async def test_a_deposit_of_another_amount_under_the_id_is_not_a_retry() -> None:
    first = DepositMoney("c", "account-1", Decimal("10.00"))
    await ensure_retry(
        temporal(first), "deposit-money/c", DepositMoney("c", "account-1", Decimal(10))
    )
    with pytest.raises(CommandIdReused):
        await ensure_retry(
            temporal(first), "deposit-money/c", DepositMoney("c", "account-1", Decimal(25))
        )
