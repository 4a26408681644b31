"""How much of the schema a caller is told: customers get neither introspection nor hints.

API tokens (an operator's GraphiQL, a client back end built against the schema) may
introspect it, and graphql-core's errors suggest the names they may have meant ("Did you
mean 'user'?"). A customer session is anyone who signed in: its documents are validated
with introspection refused, and its errors lose those suggestions. That makes the schema
harder to map, not impossible: an error still names what the document touched (a missing
required argument and its type, an input's fields, a type a fragment may not spread), so a
session that guesses a name right learns its shape. What keeps customers out is each
operation's own check of the caller, not this.
"""

from __future__ import annotations

from graphql import ASTValidationRule, GraphQLError, NoSchemaIntrospectionCustomRule

from api.auth import Caller

SUGGESTION = " Did you mean "


def schema_hidden(context: object) -> bool:
    """Whether the operation's caller is a customer, to whom the schema is not described."""
    caller = getattr(context, "caller", None)
    return isinstance(caller, Caller) and caller.customer is not None


def rules_for(
    context: object, rules: tuple[type[ASTValidationRule], ...]
) -> tuple[type[ASTValidationRule], ...]:
    """The validation rules for the caller: `rules`, refusing introspection for a customer."""
    return (*rules, NoSchemaIntrospectionCustomRule) if schema_hidden(context) else rules


def disclosed(context: object, errors: list[GraphQLError]) -> list[GraphQLError]:
    """The errors as the caller may read them: for a customer, without suggested names.

    The errors may be the cached checks' own, shared by every caller: changed ones are
    copies.
    """
    if not schema_hidden(context):
        return errors
    return [_without_suggestion(error) for error in errors]


def _without_suggestion(error: GraphQLError) -> GraphQLError:
    message, found, _ = error.message.partition(SUGGESTION)
    if not found:
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )
