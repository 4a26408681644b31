"""A document executed by graphql-core with a given executor class, awaited when it must be."""

from __future__ import annotations

from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLSchema, execute


async def executed(
    schema: GraphQLSchema, document: DocumentNode, executor: type[Any], **options: Any
) -> ExecutionResult:
    """The answer of `document` run by `executor` (graphql-core's `execute` options)."""
    result = execute(schema, document, executor_class=executor, **options)
    if not isinstance(result, ExecutionResult):
        result = await result
    assert isinstance(result, ExecutionResult)
    return result
