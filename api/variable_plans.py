"""An operation's variables coerced by a plan made once per document.

graphql-core builds each operation's executor anew: it finds the operation among the
document's definitions, then for every variable definition works out the variable's type
from the document (`type_from_ast`), checks it is an input type and coerces the value through
the type's generic walk. For `query Account($id: ID!)` that is the same work every time, for
one string.

`VariablePlan` keeps, for one operation of a cached document, the operation and each
variable's signature, so an executor can be built from them. It only takes variables of the
specified `ID`, `String` and `Boolean` types, non-null or not and without a default, and only
values that these types take as they are (a string, a boolean). Any other value (missing,
null, a number for an `ID`) gives no coerced values, and graphql-core's own build coerces it
(or refuses it with its own errors) instead.

A plan holds its document, and the document its query text. Only documents whose text the
parsed-documents cache keeps (api/safety.py) are planned: a longer text is parsed anew for each
request, so its plan would never be used again, and would only keep that text (up to a whole
request body) alive until the plans are cleared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLBoolean,
    GraphQLID,
    GraphQLNonNull,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
)
from graphql.execution.get_variable_signature import get_variable_signature
from graphql.execution.values import VariableValues, VariableValueSource
from graphql.pyutils import Undefined

TAKEN_AS_THEY_ARE = {GraphQLID: str, GraphQLString: str, GraphQLBoolean: bool}
"""The scalars whose coercion hands back a value of this Python type unchanged."""
PLANS_KEPT = 256
"""How many documents' plans an executor class keeps (as many as the checked documents)."""


@dataclass(frozen=True)
class VariablePlan:
    """One operation of a document, with what coercing its variables needs."""

    document: DocumentNode
    operation: OperationDefinitionNode
    variables: tuple[tuple[str, Any, type], ...]
    """Each variable's name, its signature, and the Python type its value must have."""

    def variable_values(self, inputs: dict[str, Any]) -> VariableValues | None:
        """The coerced variables, as graphql-core would give them, or None for it to coerce."""
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for name, signature, python_type in self.variables:
            value = inputs.get(name, Undefined)
            if type(value) is not python_type:
                return None
            sources[name] = VariableValueSource(signature, value)
            coerced[name] = value
        return VariableValues(sources, coerced)


def variable_plan(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> VariablePlan | None:
    """The plan of the document's operation, or None where graphql-core must build it: a
    document with fragments or several operations, or a variable of another kind."""
    operations = document.definitions
    if len(operations) != 1 or not isinstance(operations[0], OperationDefinitionNode):
        return None
    operation = operations[0]
    if operation_name is not None and (
        operation.name is None or operation.name.value != operation_name
    ):
        return None
    variables = []
    for definition in operation.variable_definitions or ():
        if definition.default_value is not None or definition.directives:
            return None
        signature = get_variable_signature(schema, definition)
        if isinstance(signature, Exception):
            return None
        named = signature.type
        if isinstance(named, GraphQLNonNull):
            named = named.of_type
        python_type = next((t for s, t in TAKEN_AS_THEY_ARE.items() if s is named), None)
        if python_type is None:
            return None
        variables.append((signature.name, signature, python_type))
    return VariablePlan(document, operation, tuple(variables))
