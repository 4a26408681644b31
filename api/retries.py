"""Whether a command sent under an id already used is a retry of the command first sent.

A client's `commandId` (or `transferId`) makes a retry safe: sent again, the command joins
the workflow its id started and answers with that outcome. A different command under the
same id is no retry: answering it with the first one's outcome would report a change that
never happened (a deposit of another amount, a transfer to someone else). The first command
is the input its workflow started with, in the workflow's history, whatever API version sent
it.

That history is there while the workflow runs and, once it closed, for the Temporal
namespace's retention period; the start (REJECT_DUPLICATE) sees no further. Past retention
the id is unknown to Temporal: a command sent under it starts a new workflow and is compared
with nothing, so a different command is no longer refused here (registerUser and openAccount
still are, by their activity: their new aggregate's id comes from the command id).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from typing import Any

import pydantic
from temporalio.client import Client

from domain.accounts import CloseAccount, DepositMoney, OpenAccount, WithdrawMoney
from domain.transfers import TransferMoney
from domain.users import ChangeUserEmail, LockUser, RecordLoginAttempt, RegisterUser, UnlockUser

CHOSEN_BY_CALLER: dict[type, frozenset[str]] = {
    OpenAccount: frozenset({"command_id", "account_id", "owner_id", "currency"}),
    DepositMoney: frozenset({"command_id", "account_id", "amount"}),
    WithdrawMoney: frozenset({"command_id", "account_id", "amount"}),
    CloseAccount: frozenset({"command_id", "account_id"}),
    TransferMoney: frozenset({"transfer_id", "from_account_id", "to_account_id", "amount"}),
    RegisterUser: frozenset({"command_id", "user_id", "email", "name"}),
    ChangeUserEmail: frozenset({"command_id", "user_id", "new_email", "expected_version"}),
    LockUser: frozenset({"command_id", "user_id", "reason"}),
    UnlockUser: frozenset({"command_id", "user_id"}),
    RecordLoginAttempt: frozenset({"command_id", "user_id", "succeeded", "reason"}),
}
"""Per command, the fields its caller chooses: only these are compared. The rest are the
API's (who sent it, the day a transfer counts against, the saga's compensation budget, a new
account's daily limit, a hash older commands carried), and may differ across a deploy."""


class CommandIdReused(Exception):
    """The id was first used by a command that asked for something else."""

    def __init__(self, first: dict[str, Any]) -> None:
        super().__init__("the id was already used by another command")
        self.first = first
        """The first command's input as its history recorded it (JSON), {} if unreadable."""


def asks_the_same(first: dict[str, Any], command: Any) -> bool:
    """Whether a recorded input (JSON) asks for what `command` asks for.

    Only the fields the caller chooses are read, each as the command's type has it now, so
    an input recorded by another version of the API (fields since added, dropped or changed)
    compares by what both ask for; one that does not read as this version's field differs.
    """
    for field in chosen_fields(command.__class__):
        if field.name in first:
            try:
                recorded = field.adapter.validate_python(first[field.name])
            except pydantic.ValidationError:
                return False
        elif field.default is not dataclasses.MISSING:
            recorded = field.default
        else:
            return False
        if recorded != getattr(command, field.name):
            return False
    return True


@dataclasses.dataclass(frozen=True)
class ChosenField:
    """A field the caller chooses: how a recorded value reads as it, and its default."""

    name: str
    adapter: pydantic.TypeAdapter[Any]
    default: Any


@functools.cache
def chosen_fields(command_type: type) -> tuple[ChosenField, ...]:
    """The fields of CHOSEN_BY_CALLER[command_type], in the command's order, each with the
    adapter of its type hint: built once per command type (resolving the hints and building
    an adapter costs more than comparing a whole command)."""
    types = typing.get_type_hints(command_type)
    chosen = CHOSEN_BY_CALLER[command_type]
    return tuple(
        ChosenField(field.name, pydantic.TypeAdapter(types[field.name]), field.default)
        for field in dataclasses.fields(command_type)
        if field.name in chosen
    )


async def ensure_retry(temporal: Client, workflow_id: str, command: Any) -> None:
    """Raise CommandIdReused unless the workflow already started under `workflow_id` was
    started with the same request as `command`."""
    handle = temporal.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events(page_size=1):
        started = event.workflow_execution_started_event_attributes
        try:
            first = json.loads(started.input.payloads[0].data)
        except (IndexError, ValueError):
            first = None
        if not isinstance(first, dict):
            raise CommandIdReused({})
        if not asks_the_same(first, command):
            raise CommandIdReused(first)
        return
