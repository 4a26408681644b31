"""What a resolver may use: long-lived services and the caller."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader
from temporalio.client import Client

from adapters.database import GroupedReads, ReadPool
from adapters.event_store import PostgresEventStore
from api.auth import Caller, TokenCheck
from api.consistency_waits import ConsistencyWaits
from api.live import EventFeed
from api.metrics import GraphQLMetrics
from api.pagination import MAX_PAGE
from api.websocket_limits import SocketsAwaitingInit, SocketsPerCaller
from domain.users import UserStatus
from projections.accounts import AccountView, accounts_by_ids, accounts_of_owners, read_accounts
from projections.consistency import CheckpointWakeups
from projections.users import UserView, read_users, users_by_ids
from runtime.config import Settings

OWNER_ACCOUNTS = MAX_PAGE
"""The most accounts a user's `accounts` list answers; a user with more gets an error there."""


@dataclass(frozen=True)
class Services:
    """Created once when the API starts: settings, the database engines, the Temporal client.

    `engine` is the primary's. `read_models` serves read-model queries and their
    `consistentWith` waits (a replica's engine, or None for the primary's): a projector
    commits its rows and its checkpoint in one transaction, so a replica that shows the
    checkpoint at a position shows the rows of that position too. `reads` holds plain
    psycopg connections to the same read models for the hottest reads (prepared statements);
    `primary_reads` the same on the primary, for the user behind every customer request.
    """

    settings: Settings
    engine: AsyncEngine
    temporal: Client
    tokens: TokenCheck
    feed: EventFeed
    reads: ReadPool
    primary_reads: ReadPool
    graphql_metrics: GraphQLMetrics | None = None
    read_models: AsyncEngine | None = None
    checkpoint_wakeups: CheckpointWakeups | None = None

    @property
    def read_engine(self) -> AsyncEngine:
        """The engine for read-model queries and consistency waits."""
        return self.engine if self.read_models is None else self.read_models

    @property
    def reads_primary(self) -> bool:
        """Whether read models are read on the primary, where the checkpoint notifications
        come from (then a checkpoint notified at a position is readable there)."""
        return self.read_models is None

    @cached_property
    def accounts(self) -> GroupedReads[AccountView]:
        """`account(id)` reads: those of requests in flight together go as one statement."""
        return GroupedReads(self.reads, read_accounts)

    @cached_property
    def admissions(self) -> GroupedReads[UserView]:
        """The users behind customer requests, read on the primary (a lock takes effect at
        once): those of requests in flight together go as one statement."""
        return GroupedReads(self.primary_reads, read_users)

    @cached_property
    def event_store(self) -> PostgresEventStore:
        """The event store on the primary, for the reads the API makes of it."""
        return PostgresEventStore(self.engine)

    async def admit(self, caller: Caller | None) -> Caller | None:
        """The caller, unless it is a customer whose user is locked (or unknown), or has been
        locked since its session was issued: locking a user revokes its sessions for good."""
        if caller is None or caller.customer is None:
            return caller
        user = await self.admissions.get(caller.customer)
        if user is None or user.status is not UserStatus.ACTIVE:
            return None
        return caller if user.locked_version == caller.lock_epoch else None

    @cached_property
    def consistency_waits(self) -> ConsistencyWaits:
        """The bound on concurrent `consistentWith` waits, shared by every request."""
        return ConsistencyWaits(self.settings.api_max_consistency_waits)

    @cached_property
    def sockets_per_caller(self) -> SocketsPerCaller:
        """The bound on each caller's open websockets, shared by every socket."""
        settings = self.settings
        return SocketsPerCaller(
            settings.api_max_websockets_per_user, settings.api_max_websockets_per_token
        )

    @cached_property
    def sockets_awaiting_init(self) -> SocketsAwaitingInit:
        """The bound on sockets not past their connection_init yet, shared by every socket."""
        return SocketsAwaitingInit(self.settings.api_max_websockets_awaiting_init)


@dataclass(frozen=True)
class Context:
    """One request's context; its DataLoaders (batched per request) are built on first use."""

    services: Services
    request: Request | WebSocket
    caller: Caller

    @cached_property
    def accounts_by_owner(self) -> DataLoader[str, list[AccountView]]:
        """Each owner's first OWNER_ACCOUNTS + 1 accounts: one more than the list answers
        tells an owner who has too many."""
        engine = self.services.read_engine

        async def owned(owner_ids: list[str]) -> list[list[AccountView]]:
            async with engine.connect() as conn:
                found = await accounts_of_owners(conn, owner_ids, OWNER_ACCOUNTS + 1)
            return [found[owner] for owner in owner_ids]

        return DataLoader(load_fn=owned)

    @cached_property
    def accounts_by_id(self) -> DataLoader[str, AccountView | None]:
        engine = self.services.read_engine

        async def accounts(ids: list[str]) -> list[AccountView | None]:
            async with engine.connect() as conn:
                found = await accounts_by_ids(conn, ids)
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=accounts)

    @cached_property
    def users_by_id(self) -> DataLoader[str, UserView | None]:
        engine = self.services.read_engine

        async def users(ids: list[str]) -> list[UserView | None]:
            async with engine.connect() as conn:
                found = await users_by_ids(conn, ids)
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=users)

    @property
    def actor(self) -> str:
        """Who to record as the actor of the caller's commands."""
        return self.caller.name
