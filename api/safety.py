"""Limits on what a query may ask for, and masking of unexpected errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from graphql import GraphQLError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

log = logging.getLogger(__name__)

MAX_DEPTH = 8
MAX_TOKENS = 2_000
MAX_ALIASES = 15


class MaskUnexpectedErrors(MaskErrors):
    """Unexpected errors reach the client as a correlation id; the details go to the log."""

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        correlation_id = str(uuid.uuid4())
        log.error(
            "unexpected error %s at %s",
            correlation_id,
            error.path,
            exc_info=error.original_error or error,
        )
        return GraphQLError(
            message=f"Unexpected error (correlation id {correlation_id}).",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "correlationId": correlation_id},
        )


def unexpected(error: GraphQLError) -> bool:
    """Whether an error came from a bug or an outage rather than from the request."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def safety_extensions() -> list[Callable[[], SchemaExtension]]:
    """Factories of the extensions every request runs with (fresh state per request)."""
    return [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaskUnexpectedErrors(should_mask_error=unexpected),
    ]
