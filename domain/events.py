"""Domain events: the base class, the type registry, and their JSON shape."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, TypeVar

JsonDict = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DomainEvent:
    """A fact the business cares about; subclasses are frozen dataclasses named in past tense."""

    schema_version: ClassVar[int] = 1


E = TypeVar("E", bound=type[DomainEvent])

_registry: dict[str, type[DomainEvent]] = {}
Upcaster = Callable[[JsonDict], JsonDict]
_upcasters: dict[tuple[str, int], Upcaster] = {}


def event_type(cls: E) -> E:
    """Class decorator: register an event class under its class name."""
    name = cls.__name__
    existing = _registry.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"event type {name} is registered twice")
    _registry[name] = cls
    return cls


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning a payload of `from_version` into `from_version + 1`."""

    def register(fn: Upcaster) -> Upcaster:
        _upcasters[(type_name, from_version)] = fn
        return fn

    return register


def type_name(event: DomainEvent) -> str:
    """The stored type name of an event."""
    return type(event).__name__


def to_data(event: DomainEvent) -> JsonDict:
    """An event's payload as JSON-compatible values (decimals as strings, times as ISO 8601)."""
    return {f.name: _encode(getattr(event, f.name)) for f in dataclasses.fields(event)}


def upcast(name: str, data: Mapping[str, Any], schema_version: int = 1) -> JsonDict:
    """A stored payload in its type's current schema version (a copy; unknown types raise)."""
    cls = _registry.get(name)
    if cls is None:
        raise UnknownEventType(name)
    payload = dict(data)
    version = schema_version
    while version < cls.schema_version:
        step = _upcasters.get((name, version))
        if step is None:
            raise UnknownEventType(f"{name} v{version} (no upcaster to v{version + 1})")
        payload = step(payload)
        version += 1
    return payload


def from_data(name: str, data: Mapping[str, Any], schema_version: int = 1) -> DomainEvent:
    """Rebuild an event from its stored payload, upcasting older schema versions first."""
    payload = upcast(name, data, schema_version)
    cls = _registry[name]
    hints = _field_types(cls)
    fields = {key: _decode(hints[key], value) for key, value in payload.items() if key in hints}
    return cls(**fields)


class UnknownEventType(LookupError):
    """A stored event whose type or schema version this code cannot read."""


_hints: dict[type[DomainEvent], dict[str, Any]] = {}


def _field_types(cls: type[DomainEvent]) -> dict[str, Any]:
    if cls not in _hints:
        hints = typing.get_type_hints(cls)
        _hints[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return _hints[cls]


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        (item, *_) = typing.get_args(hint)
        return tuple(_decode(item, v) for v in value)
    if hint is Decimal:
        return Decimal(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    return value
