"""What a caller may see and act on.

API tokens (client, operator) see everything; the operator-only operations check
`Caller.is_operator` themselves. A customer session sees its own user, that user's accounts,
the transfers touching those accounts and the streams of all three. Anything else reads as
missing (null, an empty connection), so a customer cannot even learn that it exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from graphql import GraphQLError
from temporalio.service import RPCError

from api.context import Context
from domain.refusals import HIDDEN_AMOUNT, Refusal
from domain.transfers import TransferRequested
from domain.users import suspicious_activity_stream
from projections.accounts import AccountView, get_account
from projections.transfers import TransferView, get_transfer
from workflows import search_attributes
from workflows.transfers import transfer_workflow_id


class NotYours(GraphQLError):
    """A subscription or lookup the caller may not make."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is not available to this caller", extensions={"code": "FORBIDDEN"}
        )


def sees_user(ctx: Context, user_id: str) -> bool:
    """Whether the caller may see (and act as) this user."""
    own = ctx.caller.customer
    return own is None or own == user_id


def sees_account(ctx: Context, account: AccountView) -> bool:
    """Whether the caller may see (and move money out of) this account."""
    return sees_user(ctx, account.owner_id)


async def may_use_account(ctx: Context, account_id: str) -> bool:
    """Whether the caller may act on the account: any for an API token, its own (read now,
    not from a per-context cache: a subscription's context lives as long as its socket) for
    a customer."""
    if ctx.caller.customer is None:
        return True
    # From the primary: a right checked before a command is read where the command lands.
    async with ctx.services.engine.connect() as conn:
        account = await get_account(conn, account_id)
    return account is not None and sees_account(ctx, account)


async def sees_transfer(ctx: Context, transfer: TransferView) -> bool:
    """Whether the caller may see this transfer: it touches one of the caller's accounts."""
    return await sees_transfer_between(ctx, transfer.from_account_id, transfer.to_account_id)


async def sees_transfer_between(ctx: Context, from_account_id: str, to_account_id: str) -> bool:
    """Whether the caller may see a transfer between these accounts: one of them is its own."""
    if ctx.caller.customer is None:
        return True
    return await may_use_account(ctx, from_account_id) or await may_use_account(ctx, to_account_id)


async def sees_stream(ctx: Context, stream_id: str) -> bool:
    """Whether the caller may read this stream's events: its user's, account's or transfer's."""
    own = ctx.caller.customer
    if own is None or stream_id in (own, suspicious_activity_stream(own)):
        return True
    if await may_use_account(ctx, stream_id):
        return True
    return await sees_transfer_id(ctx, stream_id)


async def sees_transfer_id(ctx: Context, transfer_id: str) -> bool:
    """Whether the caller may see the transfer (and its saga) with this id, made or not yet
    in the read model; one that no one has sent is seen by API tokens only."""
    if ctx.caller.customer is None:
        return True
    accounts = await transfer_accounts(ctx, transfer_id)
    if accounts is None:
        return False
    for account_id in accounts:
        if await may_use_account(ctx, account_id):
            return True
    return False


async def transfer_accounts(ctx: Context, transfer_id: str) -> tuple[str, ...] | None:
    """The accounts a transfer moves money between, None for a transfer no one sent.

    From the transfers read model on the primary, where it usually is by the time a client
    has the id. A transfer the read model has not taken yet (its projector behind, or the
    saga still before its first step: `transferMoney` may answer TransferPending first) is
    known to its saga's workflow from the moment it was sent: the accounts are among the
    ids the workflow starts with (its AggregateIds). A workflow id is never reused, so those
    are the accounts of the transfer the read model will show.
    """
    async with ctx.services.engine.connect() as conn:
        transfer = await get_transfer(conn, transfer_id)
    if transfer is not None:
        return (transfer.from_account_id, transfer.to_account_id)
    # A transferId is the sender's choice: one naming another aggregate's stream (someone's
    # account) starts a saga that fails at once, and must never open that stream to the
    # sender. Only a stream that is empty yet or holds a transfer is asked about.
    if await names_another_stream(ctx, transfer_id):
        return None
    handle = ctx.services.temporal.get_workflow_handle(transfer_workflow_id(transfer_id))
    try:
        description = await handle.describe(rpc_timeout=DESCRIBE_TIMEOUT)
    except RPCError:
        # Missing, or Temporal not answering: not visible (the same answer either way, and
        # at once, so neither an outage nor the answer's timing tells what the id is).
        return None
    ids = description.typed_search_attributes.get(search_attributes.AGGREGATE_IDS)
    if not ids:
        return None
    return tuple(i for i in ids if i != transfer_id)


async def names_another_stream(ctx: Context, transfer_id: str) -> bool:
    """Whether the transfer id is the id of a stream that is not a transfer's (someone's
    account, a user): one that holds events and does not begin with `TransferRequested`.
    Only its first event is read."""
    first = await ctx.services.event_store.first_event_type(transfer_id)
    return first is not None and first != TRANSFER_REQUESTED


TRANSFER_REQUESTED = TransferRequested.__name__
"""The stored type of every transfer stream's first event."""
DESCRIBE_TIMEOUT = timedelta(seconds=2)
"""How long a customer's read waits for Temporal to describe a transfer not yet projected."""

AMOUNT = re.compile(r"-?[0-9]+\.[0-9]+")
"""A figure in a reason kept without its facts (recorded before they were kept)."""


async def reason_shown(
    ctx: Context, reason: str | None, details: Mapping[str, object] | None = None
) -> str | None:
    """A rejection's reason (a rejected transfer's, a saga's error) as the caller may read it.

    A refusal with an account's figures keeps them as facts in its details
    (domain/refusals.py): a customer reading about an account that is not its own (the
    sender's, as the receiver of a transfer, or the other way round) is shown the refusal's
    text with every figure hidden: it learns why, not what the other customer holds. A reason
    kept without such facts (from before they were kept, or naming no figures) is shown to a
    customer with every figure in it hidden, whoever's account it names.
    """
    if reason is None or ctx.caller.customer is None:
        return reason
    refusal = Refusal.from_facts(details)
    if refusal is None:
        return AMOUNT.sub(HIDDEN_AMOUNT, reason)
    return await refusal_shown(ctx, refusal)


async def refusal_shown(ctx: Context, refusal: Refusal) -> str:
    """The refusal's text, its figures hidden unless the caller may see its account."""
    return refusal.text(amounts_hidden=not await may_use_account(ctx, refusal.account_id))


async def details_shown(ctx: Context, details: Mapping[str, object]) -> Mapping[str, object]:
    """A rejection's details as the caller may read them: a refusal's figures as its text.

    As with `reason_shown`, details that are not a refusal's facts are shown to a customer
    with every figure hidden: a value that is a number, and each amount within a value.
    """
    if ctx.caller.customer is None:
        return details
    refusal = Refusal.from_facts(details)
    if refusal is None:
        return {name: _figures_hidden(value) for name, value in details.items()}
    if await may_use_account(ctx, refusal.account_id):
        return details
    return refusal.facts(amounts_hidden=True)


FIGURE = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")
"""A detail's value that is a number as a whole."""


def _figures_hidden(value: object) -> object:
    if not isinstance(value, str):
        is_figure = isinstance(value, int | float) and not isinstance(value, bool)
        return HIDDEN_AMOUNT if is_figure else value
    if FIGURE.fullmatch(value):
        return HIDDEN_AMOUNT
    return AMOUNT.sub(HIDDEN_AMOUNT, value)


def require_operator(ctx: Context, what: str) -> None:
    """Refuse a lookup only an operator may make."""
    if not ctx.caller.is_operator:
        raise NotYours(what)
