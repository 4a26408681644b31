"""The transfers read model: each transfer's status, reason and the steps it went through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.event_store import RecordedEvent
from domain.transfers import TransferStatus
from projections.accounts import accounts
from projections.prepared import apply_prepared, quoted_table


def transfers_table(name: str = "transfers") -> Table:
    """The transfers table, or a same-shaped table a rebuild fills before swapping it in."""
    return Table(
        name,
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("from_account_id", Text, nullable=False, index=True),
        Column("to_account_id", Text, nullable=False, index=True),
        Column("amount", Numeric(20, 2), nullable=False),
        Column("status", Text, nullable=False, index=True),
        Column("reason", Text),
        Column("reason_details", JSONB),
        Column("steps", ARRAY(Text), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("version", Integer, nullable=False),
    )


transfers = transfers_table()


@dataclass(frozen=True)
class TransferView:
    """A transfer as clients see it."""

    id: str
    from_account_id: str
    to_account_id: str
    amount: Decimal
    status: TransferStatus
    reason: str | None
    steps: list[str]
    created_at: datetime
    updated_at: datetime
    reason_details: dict[str, str] | None = None
    """The rejection's details (a refusal's facts) the reason is shown to each reader from."""


class TransfersProjection:
    """Keeps the `transfers` table in step with the transfers' own events."""

    name: str = "transfers"
    tables: tuple[str, ...] = ("transfers",)
    event_types: tuple[str, ...] = (
        "TransferRequested",
        "TransferStepCompleted",
        "TransferStepCompensated",
        "TransferCompleted",
        "TransferRejected",
    )

    def __init__(self, table: Table = transfers) -> None:
        self._table = table
        # Quoted for SQL, and `%` doubled: the statements are psycopg's, with placeholders.
        quoted = quoted_table(table.name)
        self._insert = _insert_transfer(quoted)
        self._add_step = _changed(quoted, "steps = array_append(steps, %(step)s::text)")
        self._set_status = _changed(quoted, "status = %(status)s")
        self._reject = _changed(
            quoted, "status = %(status)s, reason = %(reason)s, reason_details = %(details)s"
        )

    def writing_to(self, tables: dict[str, str]) -> TransfersProjection:
        """The same projection writing into other tables (live name -> other name)."""
        return TransfersProjection(transfers_table(tables["transfers"]))

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Update the transfer's row; the version guard makes a replayed event a no-op."""
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        """Apply events one by one, in order, each a prepared statement on the driver."""
        await apply_prepared(conn, events, self._statement)

    def _statement(self, event: RecordedEvent) -> tuple[str, dict[str, Any]]:
        data = event.data
        if event.type == "TransferRequested":
            return self._insert, {
                "id": event.stream_id,
                "from_account_id": data["from_account_id"],
                "to_account_id": data["to_account_id"],
                "amount": Decimal(data["amount"]),
                "status": _REQUESTED,
                "at": event.recorded_at,
                "version": event.version,
            }
        params: dict[str, Any] = {
            "id": event.stream_id,
            "at": event.recorded_at,
            "version": event.version,
        }
        if event.type == "TransferStepCompleted":
            return self._add_step, {**params, "step": data["step"]}
        if event.type == "TransferStepCompensated":
            return self._add_step, {**params, "step": f"compensated:{data['step']}"}
        if event.type == "TransferCompleted":
            return self._set_status, {**params, "status": _COMPLETED}
        if event.type == "TransferRejected":
            details = data.get("details")
            return self._reject, {
                **params,
                "status": _REJECTED,
                "reason": data["reason"],
                "details": Jsonb(details) if isinstance(details, dict) else None,
            }
        raise ValueError(f"not an event of the transfers projection: {event.type}")


# The statuses as the rows store them (an enum member's `.value` is a slow property).
_REQUESTED: str = TransferStatus.REQUESTED.value
_COMPLETED: str = TransferStatus.COMPLETED.value
_REJECTED: str = TransferStatus.REJECTED.value


def _insert_transfer(table: str) -> str:
    """Insert a requested transfer; one already there (a replayed event) is left as it is."""
    return (
        f"INSERT INTO {table} (id, from_account_id, to_account_id, amount, status, steps,"
        " created_at, updated_at, version) VALUES (%(id)s, %(from_account_id)s,"
        " %(to_account_id)s, %(amount)s, %(status)s, '{}', %(at)s, %(at)s, %(version)s)"
        " ON CONFLICT (id) DO NOTHING"
    )


def _changed(table: str, assignments: str) -> str:
    """An event's change to its transfer's row, skipped if the row has that event already."""
    return (
        f"UPDATE {table} SET {assignments}, updated_at = %(at)s, version = %(version)s"
        " WHERE id = %(id)s AND version < %(version)s"
    )


async def get_transfer(conn: AsyncConnection, transfer_id: str) -> TransferView | None:
    """One transfer by id."""
    query = select(transfers).where(transfers.c.id == transfer_id)
    row = (await conn.execute(query)).one_or_none()
    return None if row is None else _view(row._mapping)


_TRANSFER_COLUMNS = (
    "id",
    "from_account_id",
    "to_account_id",
    "amount",
    "status",
    "reason",
    "steps",
    "created_at",
    "updated_at",
    "reason_details",
)
_TRANSFER_BY_ID = f"SELECT {', '.join(_TRANSFER_COLUMNS)} FROM transfers WHERE id = %s"


async def read_transfer(
    conn: psycopg.AsyncConnection[Any], transfer_id: str
) -> TransferView | None:
    """One transfer by id, on a `ReadPool`'s psycopg connection, as a prepared statement."""
    cursor = await conn.execute(_TRANSFER_BY_ID, [transfer_id], prepare=True)
    row = await cursor.fetchone()
    return None if row is None else _view(dict(zip(_TRANSFER_COLUMNS, row, strict=True)))


async def list_transfers(
    conn: AsyncConnection,
    status: TransferStatus | None,
    account_id: str | None,
    after: str | None,
    limit: int,
    owner_id: str | None = None,
) -> list[TransferView]:
    """Transfers in id order after a cursor, optionally by status, involving an account, or
    touching an account of one owner."""
    query = select(transfers).order_by(transfers.c.id).limit(limit)
    if owner_id is not None:
        owned = select(accounts.c.id).where(accounts.c.owner_id == owner_id)
        query = query.where(
            or_(transfers.c.from_account_id.in_(owned), transfers.c.to_account_id.in_(owned))
        )
    if status is not None:
        query = query.where(transfers.c.status == status.value)
    if account_id is not None:
        query = query.where(
            or_(transfers.c.from_account_id == account_id, transfers.c.to_account_id == account_id)
        )
    if after is not None:
        query = query.where(transfers.c.id > after)
    return [_view(r._mapping) for r in (await conn.execute(query)).all()]


def _view(m: Mapping[Any, Any]) -> TransferView:
    return TransferView(
        id=m["id"],
        from_account_id=m["from_account_id"],
        to_account_id=m["to_account_id"],
        amount=m["amount"],
        status=TransferStatus(m["status"]),
        reason=m["reason"],
        steps=list(m["steps"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        reason_details=m["reason_details"],
    )
