"""User queries, answered from the users read model."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.consistency import ensure_consistent
from api.context import Context
from api.users.types import User
from projections.users import get_user, get_user_by_email

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
