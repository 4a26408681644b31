"""What a resolver may use: long-lived services and the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader
from temporalio.client import Client

from api.auth import Caller, TokenCheck
from api.live import EventFeed
from projections.accounts import AccountView, accounts_by_ids, accounts_of_owners
from projections.users import UserView, users_by_ids
from runtime.config import Settings


@dataclass(frozen=True)
class Services:
    """Created once when the API starts: settings, the database engine, the Temporal client."""

    settings: Settings
    engine: AsyncEngine
    temporal: Client
    tokens: TokenCheck
    feed: EventFeed


@dataclass(frozen=True)
class Context:
    """One request's context, with its own DataLoaders (batched per request)."""

    services: Services
    request: Request | WebSocket
    caller: Caller
    accounts_by_owner: DataLoader[str, list[AccountView]] = field(init=False)
    accounts_by_id: DataLoader[str, AccountView | None] = field(init=False)
    users_by_id: DataLoader[str, UserView | None] = field(init=False)

    def __post_init__(self) -> None:
        engine = self.services.engine

        async def owned(owner_ids: list[str]) -> list[list[AccountView]]:
            async with engine.connect() as conn:
                found = await accounts_of_owners(conn, owner_ids)
            return [found[owner] for owner in owner_ids]

        async def accounts(ids: list[str]) -> list[AccountView | None]:
            async with engine.connect() as conn:
                found = await accounts_by_ids(conn, ids)
            return [found.get(i) for i in ids]

        async def users(ids: list[str]) -> list[UserView | None]:
            async with engine.connect() as conn:
                found = await users_by_ids(conn, ids)
            return [found.get(i) for i in ids]

        object.__setattr__(self, "accounts_by_owner", DataLoader(load_fn=owned))
        object.__setattr__(self, "accounts_by_id", DataLoader(load_fn=accounts))
        object.__setattr__(self, "users_by_id", DataLoader(load_fn=users))

    @property
    def actor(self) -> str:
        """Who to record as the actor of the caller's commands."""
        return self.caller.name
