"""Search attributes operators use to find commands and sagas in the Temporal UI."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

SAGA_TYPE = SearchAttributeKey.for_keyword("SagaType")
SAGA_STATUS = SearchAttributeKey.for_keyword("SagaStatus")
AGGREGATE_IDS = SearchAttributeKey.for_keyword_list("AggregateIds")
COMMAND_ID = SearchAttributeKey.for_keyword("CommandId")

ALL = (SAGA_TYPE, SAGA_STATUS, AGGREGATE_IDS, COMMAND_ID)

RUNNING = "RUNNING"
"""A saga's status from its start; the saga helper upserts every later one."""


def at_start(
    command_id: str, aggregate_ids: Sequence[str], saga_type: str | None = None
) -> TypedSearchAttributes:
    """The attributes a command's workflow starts with, so operators find it at once."""
    pairs: list[SearchAttributePair[str] | SearchAttributePair[Sequence[str]]] = [
        SearchAttributePair(COMMAND_ID, command_id),
        SearchAttributePair(AGGREGATE_IDS, list(aggregate_ids)),
    ]
    if saga_type is not None:
        pairs += [
            SearchAttributePair(SAGA_TYPE, saga_type),
            SearchAttributePair(SAGA_STATUS, RUNNING),
        ]
    return TypedSearchAttributes(pairs)


def dev_server_flags() -> list[str]:
    """`--search-attribute NAME=TYPE` flags registering every key on a Temporal dev server."""
    kinds = {
        SAGA_TYPE: "Keyword",
        SAGA_STATUS: "Keyword",
        AGGREGATE_IDS: "KeywordList",
        COMMAND_ID: "Keyword",
    }
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key]}"]
    return flags
