"""Search attributes operators use to find commands and sagas in the Temporal UI."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SAGA_TYPE = SearchAttributeKey.for_keyword("SagaType")
SAGA_STATUS = SearchAttributeKey.for_keyword("SagaStatus")
AGGREGATE_IDS = SearchAttributeKey.for_keyword_list("AggregateIds")
COMMAND_ID = SearchAttributeKey.for_keyword("CommandId")

ALL = (SAGA_TYPE, SAGA_STATUS, AGGREGATE_IDS, COMMAND_ID)


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
