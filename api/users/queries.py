"""User queries, answered from the users read model."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.consistency import ensure_consistent
from api.context import Context
from api.pagination import Connection, connection, decode_cursor, page_size
from api.users.types import User
from projections.users import get_user, get_user_by_email, list_users

READ_MODELS = ["users"]


@strawberry.type
class UserQueries:
    @strawberry.field(description="One user by id.")
    async def user(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: str | None = None
    ) -> User | None:
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        async with info.context.services.engine.connect() as conn:
            view = await get_user(conn, str(id))
        return None if view is None else User.from_view(view)

    @strawberry.field(description="One user by email address.")
    async def user_by_email(
        self, info: Info[Context, None], email: str, consistent_with: str | None = None
    ) -> User | None:
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        async with info.context.services.engine.connect() as conn:
            view = await get_user_by_email(conn, email.strip().lower())
        return None if view is None else User.from_view(view)

    @strawberry.field(description="Users in id order.")
    async def users(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        consistent_with: str | None = None,
    ) -> Connection[User]:
        await ensure_consistent(info.context, consistent_with, READ_MODELS)
        size = page_size(first)
        async with info.context.services.engine.connect() as conn:
            rows = await list_users(conn, decode_cursor(after), size + 1)
        return connection(rows, size, lambda v: v.id, User.from_view)
