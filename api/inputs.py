"""The input boundary: every argument of every root field is checked before its resolver runs.

Each string must be text by domain/inputs.py (no NUL, controls or lone surrogates, bounded),
each `ID` must have an id's form, and each `Decimal` must be written as domain/money.py says;
a `Decimal` reaches the resolver as a decimal.Decimal. The `Decimal` scalar itself takes any
value, so that a malformed amount is this boundary's answer rather than a validation error.

Bad input, found here or raised by the resolver as InvalidInput, is answered with the
`InvalidInput` member of a mutation's payload union, or else (queries, subscriptions, a
mutation without that member) with a GraphQL error whose code is BAD_USER_INPUT.
"""

from __future__ import annotations

import dataclasses
import decimal
import inspect
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.extensions.field_extension import AsyncExtensionResolver
from strawberry.schema.name_converter import NameConverter
from strawberry.types import Info
from strawberry.types.base import StrawberryList, StrawberryOptional, get_object_definition
from strawberry.types.field import StrawberryField
from strawberry.types.scalar import ScalarDefinition
from strawberry.types.union import StrawberryUnion

from api.errors import InvalidInputPayload, bad_user_input
from api.rejections import invalid_input
from domain.errors import InvalidInput
from domain.inputs import check_id, check_text
from domain.money import DECIMAL_FORMAT, parse_decimal

DECIMAL_SCALAR: ScalarDefinition = strawberry.scalar(
    name="Decimal",
    description=(
        f"An exact amount of money, written as {DECIMAL_FORMAT}; answers give it the same way."
    ),
    serialize=str,
    parse_value=lambda value: value,
)
"""Replaces strawberry's Decimal, which takes JSON numbers, exponents and other scripts' digits."""


class InputBoundary(FieldExtension):
    """Checks a root field's arguments and answers bad input as the field's contract says."""

    answers_invalid_input = False
    _arguments: tuple[NameConverter, list[tuple[str, Any, str]]] | None = None

    def apply(self, field: StrawberryField) -> None:
        self.field = field
        self._arguments = None
        members = field.type.types if isinstance(field.type, StrawberryUnion) else ()
        self.answers_invalid_input = InvalidInputPayload in members

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: Info, **kwargs: Any
    ) -> Any:
        try:
            checked = self.checked_arguments(info.schema.config.name_converter, kwargs)
            result = next_(source, info, **checked)
            # A subscription's resolver gives an async generator, not an awaitable.
            return await result if inspect.isawaitable(result) else result
        except InvalidInput as error:
            if self.answers_invalid_input:
                return invalid_input(error)
            raise self.refusal(error) from None

    def checked_arguments(self, names: NameConverter, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments (by Python name) with their rules applied; raises InvalidInput."""
        checked = dict(kwargs)
        for python_name, type_, name in self._named_arguments(names):
            if python_name in kwargs:
                checked[python_name] = _checked(names, kwargs[python_name], type_, name)
        return checked

    @staticmethod
    def refusal(error: InvalidInput) -> GraphQLError:
        """The error bad input is answered with where the field has no InvalidInput member."""
        return bad_user_input(error.message, error.field)

    def _named_arguments(self, names: NameConverter) -> list[tuple[str, Any, str]]:
        """The field's arguments (Python name, type, GraphQL name), named once per converter."""
        known = self._arguments
        if known is None or known[0] is not names:
            arguments = [
                (a.python_name, a.type, names.from_argument(a)) for a in self.field.arguments
            ]
            known = self._arguments = (names, arguments)
        return known[1]


def _checked(names: NameConverter, value: Any, type_: Any, name: str) -> Any:
    """The value with its rules applied (a Decimal parsed), or InvalidInput naming the field."""
    if value is None or value is strawberry.UNSET:
        return value
    if isinstance(type_, StrawberryOptional):
        return _checked(names, value, type_.of_type, name)
    if isinstance(type_, StrawberryList):
        return [_checked(names, item, type_.of_type, name) for item in value]
    if type_ is decimal.Decimal:
        if not isinstance(value, str):
            raise InvalidInput(
                name, f'must be a string such as "12.50", not {type(value).__name__}'
            )
        return parse_decimal(value, name)
    if type_ is strawberry.ID and isinstance(value, str):
        return check_id(name, value)
    if isinstance(value, str):
        return check_text(name, value)
    definition = get_object_definition(type_)
    if definition is not None and definition.is_input:
        return dataclasses.replace(
            value,
            **{
                field.python_name: _checked(
                    names, getattr(value, field.python_name), field.type, names.from_field(field)
                )
                for field in definition.fields
            },
        )
    return value


def guard(root_types: Iterable[type[Any]]) -> None:
    """Put the boundary on every field of the root types (once, however many schemas)."""
    for root_type in root_types:
        definition = get_object_definition(root_type, strict=True)
        for field in definition.fields:
            if not any(isinstance(extension, InputBoundary) for extension in field.extensions):
                field.extensions.append(InputBoundary())
