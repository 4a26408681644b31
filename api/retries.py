"""Whether a command sent under an id already used is a retry of the command first sent.

A client's `commandId` (or `transferId`) makes a retry safe: sent again, the command joins
the workflow its id started and answers with that outcome. A different command under the
same id is no retry: answering it with the first one's outcome would report a change that
never happened (a deposit of another amount, a transfer to someone else). The first command
is the input its workflow started with, in the workflow's history, so every command ever
started under the id is compared, however long ago and whatever API version sent it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.client import Client

NOT_ASKED = frozenset({"actor", "day", "compensation_attempts", "password_hash"})
"""Fields of a command the caller does not choose: who sent it, and what the API adds (the
day a transfer counts against, the saga's compensation budget, a hash that older commands
carried). A retry may differ in them."""


class CommandIdReused(Exception):
    """The id was first used by a command that asked for something else."""

    def __init__(self, first: Any) -> None:
        super().__init__("the id was already used by another command")
        self.first = first


def asked(command: Any) -> dict[str, object]:
    """What a command asks for: its fields but those the caller does not choose."""
    return {
        field.name: getattr(command, field.name)
        for field in dataclasses.fields(command)
        if field.name not in NOT_ASKED
    }


async def ensure_retry(temporal: Client, workflow_id: str, command: Any) -> None:
    """Raise CommandIdReused unless the workflow already started under `workflow_id` was
    started with the same request as `command`."""
    handle = temporal.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events(page_size=1):
        started = event.workflow_execution_started_event_attributes
        [first] = await temporal.data_converter.decode(started.input.payloads, [type(command)])
        if asked(first) != asked(command):
            raise CommandIdReused(first)
        return
