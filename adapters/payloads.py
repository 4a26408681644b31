"""How commands, results and outcomes cross Temporal: pydantic's JSON, as the SDK's pydantic
data converter writes and reads it, with each type's validator built once per process.

The SDK's converter (`temporalio.contrib.pydantic`) keeps its `TypeAdapter`s in a cache of
the converter instance (temporalio/sdk-python#1695, #1703), but the worker makes a new
payload converter from the class for every workflow activation, so the cache starts empty
each time and a saga's command had its adapter built again on every workflow start (864 µs
against 21 µs here), about a tenth of the worker's CPU a transfer (BENCHMARKS.md, *one
validator per type*).
Here the adapters live in one cache for the process, and the converters a worker makes per
activation share the same stateless JSON converter.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_json
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)

ENCODING = "json/plain"
ADAPTERS_KEPT = 1024
"""Type hints whose validators are kept: the hints of the registered workflows, activities
and updates, a set fixed by the code."""


@functools.lru_cache(maxsize=ADAPTERS_KEPT)
def _adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


def adapter_for(type_hint: Any) -> TypeAdapter[Any]:
    """The process's validator of `type_hint`, built on first use (every time for a hint
    that cannot be hashed, as the SDK does)."""
    try:
        return _adapter(type_hint)
    except TypeError:
        try:
            hash(type_hint)
        except TypeError:
            return TypeAdapter(type_hint)
        raise  # the hint's adapter could not be built


class PydanticJsonPayloads(EncodingPayloadConverter):
    """Values to and from `json/plain` payloads through pydantic, as the SDK's
    `PydanticJSONPlainPayloadConverter` without JSON options: `pydantic_core.to_json` out,
    the type hint's `TypeAdapter.validate_json` in. Keeps no state."""

    @property
    def encoding(self) -> str:
        return ENCODING

    def to_payload(self, value: Any) -> Payload | None:
        return Payload(metadata={"encoding": ENCODING.encode()}, data=to_json(value))

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        return adapter_for(Any if type_hint is None else type_hint).validate_json(payload.data)


@functools.cache
def _json_payloads() -> PydanticJsonPayloads:
    return PydanticJsonPayloads()


class SagalinePayloads(CompositePayloadConverter):
    """The SDK's default payload converters with JSON through `PydanticJsonPayloads`, as the
    SDK's `PydanticPayloadConverter` composes them. Cheap to make: the worker makes one per
    workflow activation, and every one shares the same converters."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _json_payloads() if isinstance(converter, JSONPlainPayloadConverter) else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


@functools.cache
def data_converter() -> DataConverter:
    """The data converter of every Temporal client and worker of sagaline."""
    return DataConverter(payload_converter_class=SagalinePayloads)
