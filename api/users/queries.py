"""User queries, answered from the users read model."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from api.access import sees_user
from api.consistency import ensure_consistent
from api.context import Context
from api.pagination import Connection, connection, decode_cursor, page_size
from api.users.types import User
from domain.users import normalise_email
from projections.suspicious import SuspiciousActivityView, list_suspicious_activities
from projections.users import get_user, get_user_by_email, list_users

READ_MODELS = ["users"]


@strawberry.type
class UserQueries:
    @strawberry.field(description="One user by id.")
    async def user(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: str | None = None
    ) -> User | None:
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        if not sees_user(info.context, str(id)):
            return None
        async with info.context.services.read_engine.connect() as conn:
            view = await get_user(conn, str(id))
        return None if view is None else User.from_view(view)

    @strawberry.field(description="One user by email address.")
    async def user_by_email(
        self, info: Info[Context, None], email: str, consistent_with: str | None = None
    ) -> User | None:
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        async with info.context.services.read_engine.connect() as conn:
            view = await get_user_by_email(conn, normalise_email(email))
        if view is None or not sees_user(info.context, view.id):
            return None
        return User.from_view(view)

    @strawberry.field(description="Users in id order.")
    async def users(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        consistent_with: str | None = None,
    ) -> Connection[User]:
        size = page_size(first)
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        cursor, own = decode_cursor(after), info.context.caller.customer
        async with info.context.services.read_engine.connect() as conn:
            if own is None:
                rows = await list_users(conn, cursor, size + 1)
            else:
                view = await get_user(conn, own)
                rows = [view] if view is not None and (cursor is None or view.id > cursor) else []
        return connection(rows, size, lambda v: v.id, User.from_view)


@strawberry.type(description="A pattern of events that looked like an attack on a user.")
class SuspiciousActivity:
    id: strawberry.ID
    user_id: strawberry.ID
    pattern: str
    detected_at: datetime
    event_count: int
    window_start: datetime
    window_end: datetime

    @strawberry.field(description="The user the activity concerned.")
    async def user(self, info: Info[Context, None]) -> User | None:
        if not sees_user(info.context, str(self.user_id)):
            return None
        view = await info.context.users_by_id.load(str(self.user_id))
        return None if view is None else User.from_view(view)

    @classmethod
    def from_view(cls, view: SuspiciousActivityView) -> SuspiciousActivity:
        return cls(
            id=strawberry.ID(view.id),
            user_id=strawberry.ID(view.user_id),
            pattern=view.pattern,
            detected_at=view.detected_at,
            event_count=view.event_count,
            window_start=view.window_start,
            window_end=view.window_end,
        )


@strawberry.type
class SuspiciousActivityQueries:
    @strawberry.field(description="Detections of suspicious activity, optionally of one user.")
    async def suspicious_activities(
        self,
        info: Info[Context, None],
        user_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
        consistent_with: str | None = None,
    ) -> Connection[SuspiciousActivity]:
        size = page_size(first)
        await ensure_consistent(info.context, consistent_with, ["suspicious_activities"])
        user = None if user_id is None else str(user_id)
        own = info.context.caller.customer
        if own is not None and user not in (None, own):
            return connection([], size, lambda v: v.id, SuspiciousActivity.from_view)
        user = user if own is None else own
        async with info.context.services.read_engine.connect() as conn:
            rows = await list_suspicious_activities(conn, user, decode_cursor(after), size + 1)
        return connection(rows, size, lambda v: v.id, SuspiciousActivity.from_view)
