"""Event payloads: JSON shape, exact decimals, upcasting older schema versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

import pytest

from domain.events import (
    DomainEvent,
    UnknownEventType,
    event_type,
    from_data,
    to_data,
    upcaster,
)


@event_type
@dataclass(frozen=True)
class SampleMoneyMoved(DomainEvent):
    schema_version: ClassVar[int] = 3
    account_id: str
    amount: Decimal
    at: datetime
    memo: str | None = None


@upcaster("SampleMoneyMoved", 1)
def _amount_in_units(data: dict[str, object]) -> dict[str, object]:
    """v1 stored the amount in cents, as an integer."""
    rest = {k: v for k, v in data.items() if k != "amount_cents"}
    return {**rest, "amount": str(Decimal(str(data["amount_cents"])) / 100)}


@upcaster("SampleMoneyMoved", 2)
def _rename_account(data: dict[str, object]) -> dict[str, object]:
    rest = {k: v for k, v in data.items() if k != "account"}
    return {**rest, "account_id": data["account"]}


def test_decimals_and_times_round_trip_exactly() -> None:
    event = SampleMoneyMoved("a1", Decimal("0.10"), datetime(2026, 1, 2, tzinfo=UTC), "rent")
    data = to_data(event)
    assert data["amount"] == "0.10"
    assert from_data("SampleMoneyMoved", data, schema_version=3) == event


def test_a_version_1_payload_is_upcast_through_every_version() -> None:
    stored = {"account": "a1", "amount_cents": 505, "at": "2026-01-02T00:00:00+00:00"}
    event = from_data("SampleMoneyMoved", stored, schema_version=1)
    assert event == SampleMoneyMoved("a1", Decimal("5.05"), datetime(2026, 1, 2, tzinfo=UTC))


def test_a_version_2_payload_is_upcast_from_version_2_only() -> None:
    stored = {"account": "a1", "amount": "5", "at": "2026-01-02T00:00:00+00:00", "memo": "x"}
    event = from_data("SampleMoneyMoved", stored, schema_version=2)
    assert event == SampleMoneyMoved("a1", Decimal(5), datetime(2026, 1, 2, tzinfo=UTC), "x")


def test_a_version_without_an_upcaster_is_reported() -> None:
    with pytest.raises(UnknownEventType):
        from_data("SampleMoneyMoved", {"account": "a1"}, schema_version=0)


def test_unknown_types_are_reported() -> None:
    with pytest.raises(UnknownEventType):
        from_data("NoSuchEvent", {})
