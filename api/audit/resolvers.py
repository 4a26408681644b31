"""The audit history: a stream's events straight from the event store."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import cast

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.types import Info

from api.access import NotYours, details_shown, reason_shown, require_operator, sees_stream
from api.auth import Role
from api.consistency import ensure_consistent
from api.context import Context
from api.pagination import Connection, connection, decode_cursor, page_size
from domain.event_store import RecordedEvent
from domain.events import JsonDict, UnknownEventType, upcast
from projections.catalog import projection_names


@strawberry.type(description="One stored event, as appended.")
class Event:
    position: str
    stream_id: strawberry.ID
    version: int
    type: str
    data: JSON
    metadata: JSON
    recorded_at: datetime

    @classmethod
    def from_recorded(cls, event: RecordedEvent, viewer: str | None = None) -> Event:
        """The event as shown to a caller; `viewer` is a customer's user (None: an API token)."""
        return cls(
            position=str(event.position),
            stream_id=strawberry.ID(event.stream_id),
            version=event.version,
            type=event.type,
            data=cast(JSON, current_payload(event)),
            metadata=cast(JSON, metadata_for(event.metadata, viewer)),
            recorded_at=event.recorded_at,
        )


def metadata_for(metadata: JsonDict, viewer: str | None) -> JsonDict:
    """The metadata a caller sees: a customer is not told which other customer acted (a
    transfer reaching it was sent by someone whose user reads as null to it)."""
    actor = metadata.get("actor")
    if viewer is None or not isinstance(actor, str):
        return metadata
    role, _, who = actor.partition(":")
    if role != Role.CUSTOMER.value or who == viewer:
        return metadata
    return {**metadata, "actor": Role.CUSTOMER.value}


def shown_to(ctx: Context) -> Callable[[RecordedEvent], Event]:
    """How the caller's events are built."""
    viewer = ctx.caller.customer
    return lambda event: Event.from_recorded(event, viewer)


async def reason_hidden(ctx: Context, event: RecordedEvent) -> RecordedEvent:
    """The event with its `reason` and `details` (a rejected transfer's) as the caller may
    read them: a customer reads no amounts of an account that is not its own (api/access.py)."""
    reason, details = event.data.get("reason"), event.data.get("details")
    if not isinstance(reason, str):
        return event
    facts = details if isinstance(details, dict) else None
    shown = {**event.data, "reason": await reason_shown(ctx, reason, facts)}
    if facts is not None:
        shown["details"] = await details_shown(ctx, facts)
    return event if shown == event.data else dataclasses.replace(event, data=shown)


def current_payload(event: RecordedEvent) -> JsonDict:
    """The payload in its type's current schema version: that is how a version 1
    UserRegistered loses its password hash. A type this code does not know shows as stored."""
    try:
        return upcast(event.type, event.data, event.schema_version)
    except UnknownEventType:
        return event.data


def _version_after(cursor: str | None) -> int:
    key = decode_cursor(cursor)
    if key is None:
        return 0
    if not key.isdigit() or len(key) > 9:
        raise GraphQLError("after is not a cursor", extensions={"code": "BAD_USER_INPUT"})
    return int(key)


@strawberry.type
class AuditQueries:
    @strawberry.field(description="A stream's history in version order (reads the event store).")
    async def events(
        self,
        info: Info[Context, None],
        stream_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        consistent_with: str | None = None,
    ) -> Connection[Event]:
        size = page_size(first)
        await ensure_consistent(info.context, consistent_with, projection_names())
        if not await sees_stream(info.context, str(stream_id)):
            return connection([], size, lambda e: str(e.version), shown_to(info.context))
        recorded = await info.context.services.event_store.read_stream(
            str(stream_id), from_version=_version_after(after) + 1, limit=size + 1
        )
        recorded = [await reason_hidden(info.context, event) for event in recorded]
        return connection(recorded, size, lambda e: str(e.version), shown_to(info.context))


@strawberry.type
class AuditSubscriptions:
    @strawberry.subscription(description="Events as they are appended, optionally of one stream.")
    async def event_appended(
        self, info: Info[Context, None], stream_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Event, None]:
        if stream_id is None:
            require_operator(info.context, "the whole store's feed")
        elif not await sees_stream(info.context, str(stream_id)):
            raise NotYours(f"stream {stream_id}")
        shown = shown_to(info.context)
        async with info.context.services.feed.subscribe() as updates:
            async for event in updates:
                if stream_id is None or event.stream_id == str(stream_id):
                    yield shown(await reason_hidden(info.context, event))
