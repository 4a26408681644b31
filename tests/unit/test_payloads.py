"""Payloads as the SDK's pydantic data converter writes and reads them, with each type's
validator built once for the process however many converters the worker makes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

import pytest
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter

from adapters import payloads
from adapters.payloads import SagalinePayloads, data_converter
from domain.transfers import TransferMoney
from workflows.command_outcomes import CommandOutcome, Failure, Rejection

TRANSFER = TransferMoney("t-1", "a-1", "a-2", Decimal("12.30"), "2026-12-07", "user:u-1", 3)
VALUES: list[tuple[object, Any]] = [
    (TRANSFER, TransferMoney),
    (CommandOutcome(rejection=Rejection("InsufficientFunds", "short", details={"a": "b"})), None),
    (CommandOutcome(failure=Failure("boom", "c-1")), CommandOutcome),
    (Decimal("0.10"), Decimal),
    (None, None),
    ({"nested": [1, "two", None, True]}, dict[str, Any]),
    (b"\x00bytes", bytes),
    ("text", str),
]


@pytest.mark.parametrize(("value", "type_hint"), VALUES)
async def test_payloads_are_the_sdk_pydantic_converters(value: object, type_hint: Any) -> None:
    ours = await data_converter().encode([value])
    theirs = await pydantic_data_converter.encode([value])
    assert ours == theirs
    hints = None if type_hint is None else [type_hint]
    assert await data_converter().decode(ours, hints) == await pydantic_data_converter.decode(
        theirs, hints
    )
    if type_hint is not None:
        assert await data_converter().decode(ours, hints) == [value]


@dataclass(frozen=True)
class Fresh:
    """A type no other test decodes."""

    amount: Decimal


def test_a_types_validator_is_built_once_for_every_converter_the_worker_makes() -> None:
    # The worker makes a data converter, and so a payload converter, per workflow activation.
    [payload] = SagalinePayloads().to_payloads([Fresh(Decimal("1.5"))])
    before = payloads._adapter.cache_info()
    decoded = [
        DataConverter(payload_converter_class=SagalinePayloads).payload_converter.from_payloads(
            [payload], [Fresh]
        )
        for _ in range(5)
    ]
    after = payloads._adapter.cache_info()
    assert decoded == [[Fresh(Decimal("1.5"))]] * 5
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 4)


def test_the_sdks_converter_builds_a_validator_per_converter_instance() -> None:
    """Why adapters/payloads.py exists: the SDK's cache is the converter instance's."""
    converters = [PydanticPayloadConverter() for _ in range(2)]
    json_converters = [c.converters[b"json/plain"] for c in converters]
    adapters = [c._type_adapter(Fresh) for c in json_converters]  # type: ignore[attr-defined]
    assert adapters[0] is not adapters[1]


def test_an_unhashable_type_hint_is_decoded_without_the_cache() -> None:
    unhashable = Annotated[int, []]
    with pytest.raises(TypeError):
        hash(unhashable)
    [payload] = SagalinePayloads().to_payloads([7])
    assert SagalinePayloads().from_payloads([payload], [unhashable]) == [7]
