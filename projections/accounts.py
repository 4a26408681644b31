"""The accounts read model: one row per account with its balance, for `account` and `accounts`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    bindparam,
    func,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import rows_by_id
from domain.accounts import AccountStatus
from domain.event_store import RecordedEvent
from projections.prepared import apply_prepared, quoted_table


def accounts_table(name: str = "accounts") -> Table:
    """The accounts table, or a same-shaped table a rebuild fills before swapping it in."""
    return Table(
        name,
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("owner_id", Text, nullable=False, index=True),
        Column("balance", Numeric(20, 2), nullable=False),
        Column("currency", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("opened_at", DateTime(timezone=True), nullable=False),
        Column("last_updated", DateTime(timezone=True), nullable=False),
        Column("version", Integer, nullable=False),
    )


accounts = accounts_table()

# Each of these changes the balance by +amount or -amount.
_BALANCE_SIGN = {"MoneyDeposited": 1, "TransferRefunded": 1, "MoneyWithdrawn": -1}


@dataclass(frozen=True)
class AccountView:
    """An account as clients see it."""

    id: str
    owner_id: str
    balance: Decimal
    currency: str
    status: AccountStatus
    opened_at: datetime
    last_updated: datetime
    version: int


class AccountsProjection:
    """Keeps the `accounts` table in step with account events."""

    name: str = "accounts"
    tables: tuple[str, ...] = ("accounts",)
    event_types: tuple[str, ...] = (
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
        "TransferRefunded",
        "DailyLimitReserved",
        "DailyLimitReleased",
        "AccountClosed",
    )

    def __init__(self, table: Table = accounts) -> None:
        self._table = table
        # Quoted for SQL, and `%` doubled: the statements are psycopg's, with placeholders.
        quoted = quoted_table(table.name)
        self._open = _open_account(quoted)
        self._move = _changed(quoted, "balance = balance + %(amount)s")
        self._close = _changed(quoted, "status = %(status)s")

    def writing_to(self, tables: dict[str, str]) -> AccountsProjection:
        """The same projection writing into other tables (live name -> other name)."""
        return AccountsProjection(accounts_table(tables["accounts"]))

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Update the account's row; the version guard makes a replayed event a no-op."""
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        """Apply events one by one, in order, each a prepared statement on the driver."""
        await apply_prepared(conn, events, self._statement)

    def _statement(self, event: RecordedEvent) -> tuple[str, dict[str, Any]]:
        if event.type == "AccountOpened":
            return self._open, {
                "id": event.stream_id,
                "owner_id": event.data["owner_id"],
                "currency": event.data["currency"],
                "status": _OPEN,
                "at": event.recorded_at,
                "version": event.version,
            }
        params: dict[str, Any] = {
            "id": event.stream_id,
            "at": event.recorded_at,
            "version": event.version,
        }
        if event.type == "AccountClosed":
            return self._close, {**params, "status": _CLOSED}
        # A reservation or its release changes no balance: it moves the row's version only.
        sign = _BALANCE_SIGN.get(event.type)
        amount = Decimal(0) if sign is None else sign * Decimal(event.data["amount"])
        return self._move, {**params, "amount": amount}


# The statuses as the rows store them (an enum member's `.value` is a slow property).
_OPEN: str = AccountStatus.OPEN.value
_CLOSED: str = AccountStatus.CLOSED.value


def _open_account(table: str) -> str:
    """Insert an opened account; one already there (a replayed event) is left as it is."""
    return (
        f"INSERT INTO {table} (id, owner_id, balance, currency, status, opened_at,"
        " last_updated, version) VALUES (%(id)s, %(owner_id)s, 0, %(currency)s, %(status)s,"
        " %(at)s, %(at)s, %(version)s) ON CONFLICT (id) DO NOTHING"
    )


def _changed(table: str, assignments: str) -> str:
    """An event's change to its account's row, skipped if the row has that event already."""
    return (
        f"UPDATE {table} SET {assignments}, last_updated = %(at)s, version = %(version)s"
        " WHERE id = %(id)s AND version < %(version)s"
    )


# The most frequent read of the API, sent on the driver's connection as a prepared statement:
# no statement building, compiling or result wrapping per call.
_ACCOUNTS_WHERE_ID = (
    "SELECT id, owner_id, balance, currency, status, opened_at, last_updated, version"
    " FROM accounts WHERE id"
)


# Built once: executing a ready statement skips rebuilding it and its compiled-cache key.
_ACCOUNT_BY_ID_STATEMENT = select(accounts).where(accounts.c.id == bindparam("account_id"))


async def get_account(conn: AsyncConnection, account_id: str) -> AccountView | None:
    """One account by id, through the engine (SQLAlchemy's disconnect handling included)."""
    result = await conn.execute(_ACCOUNT_BY_ID_STATEMENT, {"account_id": account_id})
    row = result.one_or_none()
    return None if row is None else account_view(row._mapping)


async def read_accounts(
    conn: psycopg.AsyncConnection[Any], account_ids: list[str]
) -> dict[str, AccountView]:
    """Accounts by id, on a `ReadPool`'s psycopg connection, as a prepared statement."""
    rows = await rows_by_id(conn, _ACCOUNTS_WHERE_ID, account_ids)
    return {row["id"]: account_view(row) for row in rows}


async def accounts_by_ids(
    conn: AsyncConnection, account_ids: Sequence[str]
) -> dict[str, AccountView]:
    """Accounts by id, in one query."""
    rows = (await conn.execute(select(accounts).where(accounts.c.id.in_(account_ids)))).all()
    return {r.id: account_view(r._mapping) for r in rows}


async def list_accounts(
    conn: AsyncConnection, owner_id: str | None, after: str | None, limit: int
) -> list[AccountView]:
    """Accounts in id order after a cursor (keyset pagination), optionally of one owner."""
    query = select(accounts).order_by(accounts.c.id).limit(limit)
    if owner_id is not None:
        query = query.where(accounts.c.owner_id == owner_id)
    if after is not None:
        query = query.where(accounts.c.id > after)
    return [account_view(r._mapping) for r in (await conn.execute(query)).all()]


# Each owner's first accounts in id order, the owners' lists side by side: a LATERAL
# subquery per owner finds its rows through the owner_id index and keeps the first `limit`
# (a top-N sort), so however many accounts an owner has, at most `limit` of them are loaded.
_OWNERS = (
    func.unnest(bindparam("owner_ids", type_=ARRAY(Text)))
    .table_valued("owner_id")
    .render_derived(name="owners")
)
_OWNERS_FIRST = (
    select(accounts)
    .where(accounts.c.owner_id == _OWNERS.c.owner_id)
    .order_by(accounts.c.id)
    .limit(bindparam("limit"))
    .lateral("owned")
)
_ACCOUNTS_OF_OWNERS = (
    select(_OWNERS_FIRST)
    .select_from(_OWNERS)
    .join(_OWNERS_FIRST, true())
    .order_by(_OWNERS_FIRST.c.owner_id, _OWNERS_FIRST.c.id)
)


async def accounts_of_owners(
    conn: AsyncConnection, owner_ids: Sequence[str], limit: int
) -> dict[str, list[AccountView]]:
    """The first `limit` accounts of each owner in id order (all of them if it has no more),
    in one query."""
    distinct = list(dict.fromkeys(owner_ids))
    found: dict[str, list[AccountView]] = {owner: [] for owner in distinct}
    if not distinct:
        return found
    rows = await conn.execute(_ACCOUNTS_OF_OWNERS, {"owner_ids": distinct, "limit": limit})
    for row in rows.all():
        view = account_view(row._mapping)
        found[view.owner_id].append(view)
    return found


def account_view(m: Mapping[Any, Any]) -> AccountView:
    return AccountView(
        id=m["id"],
        owner_id=m["owner_id"],
        balance=m["balance"],
        currency=m["currency"],
        status=AccountStatus(m["status"]),
        opened_at=m["opened_at"],
        last_updated=m["last_updated"],
        version=m["version"],
    )
