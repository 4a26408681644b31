"""Plain root fields called in one step: the arguments checked, then the resolver.

A root field such as `account(id)` has its own resolver, behind the input boundary
(api/inputs.py) and nothing else. Strawberry still wraps it, for every request, in its
resolver chain: a coroutine that builds the `Info`, a conversion of every argument by its
type, the extension chain built anew with `functools.partial`, the boundary's own coroutine,
and two awaits of whatever comes back; graphql-core then awaits that through two more
coroutines before completing the value. For a small query that chain costs a good part of
what its resolver does.

`PlainRoot` does what that chain does for such a field, as plain calls: the GraphQL argument
names mapped to the resolver's (the conversion of a scalar argument only renames it), the
boundary's checks, the `Info` (graphql-core's resolve info is still built, so a resolver sees
the same one), and the call. The executor then awaits and completes the value
(api/leaf_fields.py), errors included, as graphql-core does.

Which fields qualify is decided once per schema (`plain_root_fields`): a field of the query
or mutation type with an async resolver of its own, the input boundary as its only
extension, no `root`/`parent` parameter, and only scalar arguments (`str`, `ID`, `int`,
`float`, `bool`, optional or not). No exception handler may be configured (the schema's
executor is only used without them).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLField, GraphQLResolveInfo, GraphQLSchema
from strawberry.extensions import FieldExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryOptional
from strawberry.types.field import StrawberryField

from api.inputs import InputBoundary
from domain.errors import InvalidInput

SCALAR_ARGUMENTS = (str, strawberry.ID, int, float, bool)
"""Argument types strawberry hands a resolver as graphql-core coerced them."""


@dataclass(frozen=True)
class PlainRoot:
    """A root field strawberry would resolve through its chain, called directly."""

    field_def: GraphQLField
    field: StrawberryField
    boundary: InputBoundary
    config: StrawberryConfig
    arguments: tuple[tuple[str, str], ...]
    """Each argument's GraphQL name and the resolver's parameter it fills."""
    passes_source: bool
    info_parameter: str | None

    def call(self, source: Any, info: GraphQLResolveInfo[Any], arguments: dict[str, Any]) -> Any:
        """What the resolver gives (an awaitable) for graphql-core's coerced arguments; bad
        input raises the boundary's error (the executor calls this when the field's
        coroutine runs, where strawberry's chain would raise it)."""
        kwargs = {python: arguments[name] for name, python in self.arguments if name in arguments}
        try:
            checked = self.boundary.checked_arguments(self.config.name_converter, kwargs)
        except InvalidInput as error:
            raise self.boundary.refusal(error) from None
        if self.info_parameter is not None:
            checked[self.info_parameter] = self.config.info_class(_raw_info=info, _field=self.field)
        resolver = self.field.base_resolver
        assert resolver is not None
        return resolver(source, **checked) if self.passes_source else resolver(**checked)

    async def resolved(self, answer: Awaitable[Any]) -> Any:
        """The awaited answer, a resolver's InvalidInput answered as the boundary answers it."""
        try:
            return await answer
        except InvalidInput as error:
            raise self.boundary.refusal(error) from None


RootFields = dict[str, dict[str, PlainRoot]]
"""The plain root fields of the query and mutation types, by type name then field name."""


def plain_root_fields(schema: GraphQLSchema, config: StrawberryConfig) -> RootFields:
    """The root fields that `PlainRoot` may call directly."""
    found: RootFields = {}
    for root_type in (schema.query_type, schema.mutation_type):
        if root_type is None:
            continue
        for field_name, field_def in root_type.fields.items():
            plain = plain_root(field_def, config)
            if plain is not None:
                found.setdefault(root_type.name, {})[field_name] = plain
    return found


def plain_root(field_def: GraphQLField, config: StrawberryConfig) -> PlainRoot | None:
    """The field as a `PlainRoot`, or None if strawberry's chain does more for it."""
    field = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField) or field_def.subscribe is not None:
        return None
    resolver = field.base_resolver
    if resolver is None or not field.is_async or not hasattr(field_def.resolve, "_is_default"):
        return None
    if len(field.extensions) != 1 or type(field.extensions[0]) is not InputBoundary:
        return None
    boundary = field.extensions[0]
    if boundary.answers_invalid_input or type(boundary).map_arguments is not (
        FieldExtension.map_arguments
    ):
        return None
    if resolver.parent_parameter is not None or resolver.root_parameter is not None:
        return None
    if not all(_scalar(argument.type) for argument in field.arguments):
        return None
    info = resolver.info_parameter
    return PlainRoot(
        field_def=field_def,
        field=field,
        boundary=boundary,
        config=config,
        arguments=tuple(
            (config.name_converter.from_argument(argument), argument.python_name)
            for argument in field.arguments
        ),
        passes_source=resolver.self_parameter is not None,
        info_parameter=None if info is None else info.name,
    )


def _scalar(type_: object) -> bool:
    if type(type_) is StrawberryOptional:
        type_ = type_.of_type
    return any(type_ is scalar for scalar in SCALAR_ARGUMENTS)
