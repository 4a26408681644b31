"""The `consistentWith` argument: wait until read models include a mutation's position."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.event_store import head_position
from api.context import Context
from api.errors import BadPosition, CommandPending, ConsistencyTimeout, PositionAhead
from projections.consistency import checkpoint_reach, wait_until_caught_up

MAX_POSITION_DIGITS = 18
CONSISTENT_WITH_HEADER = "Consistent-With"
V = TypeVar("V")


def parse_position(value: str) -> int:
    """A position from its string form."""
    if not value.isascii() or not value.isdigit() or len(value) > MAX_POSITION_DIGITS:
        raise BadPosition(value)
    return int(value)


async def ensure_consistent(
    ctx: Context, consistent_with: str | None, projections: Sequence[str]
) -> None:
    """Wait for the projections to reach the position, or raise once the bound passes.

    The position comes from the `consistentWith` argument, else from the Consistent-With
    header. A query whose read models are already there takes no wait slot, nor does one
    naming a position past the event store's head, which is refused at once: every position
    a mutation answers with was committed on the primary before the answer went out, so it
    is at most the primary's head read after it (a replica's may lag; it is not asked). The
    head is read only for a position past every read model's checkpoint: one a projection
    has reached is a committed position, and is waited on without the primary.
    """
    if consistent_with is None:
        header = ctx.request.headers.get(CONSISTENT_WITH_HEADER)
        if header is None:
            return
        consistent_with = header.strip()
    position = parse_position(consistent_with)
    services = ctx.services
    every, furthest = await checkpoint_reach(services.read_engine, projections)
    if position <= every:
        return
    if position > furthest:
        async with services.engine.connect() as conn:
            head = await head_position(conn)
        if position > head:
            raise PositionAhead(position)
    seconds = services.settings.consistency_timeout_seconds
    with services.consistency_waits.slot():
        if not await wait_until_caught_up(
            services.read_engine,
            projections,
            position,
            seconds,
            services.checkpoint_wakeups,
            trust_notifications=services.reads_primary,
        ):
            raise ConsistencyTimeout(position, seconds)


async def read_after(
    ctx: Context,
    projection: str,
    position: int,
    fetch: Callable[[AsyncConnection], Awaitable[V | None]],
) -> V | None:
    """A read model's answer once it includes `position` (a bounded wait; 0 waits for none).

    Past the bound it answers as far as it got, which may be from before the position.
    """
    await wait_for_read_model(ctx, projection, position)
    async with ctx.services.read_engine.connect() as conn:
        return await fetch(conn)


async def wait_for_read_model(ctx: Context, projection: str, position: int) -> None:
    """Return once the read model includes `position`, or once the bound passes (0 waits for
    none)."""
    if not position:
        return
    services = ctx.services
    await wait_until_caught_up(
        services.read_engine,
        [projection],
        position,
        services.settings.consistency_timeout_seconds,
        services.checkpoint_wakeups,
        trust_notifications=services.reads_primary,
    )


def read_model_behind(command_id: str) -> CommandPending:
    """The answer to a command that finished but whose read model did not catch up with it
    within the bound (a projector restarting, say): sending it again is safe."""
    return CommandPending(
        message="the command is done but its result cannot be read yet; send it again",
        command_id=command_id,
    )
