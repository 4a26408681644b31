"""The transfers read model: each transfer's status, reason and the steps it went through."""

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
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.event_store import RecordedEvent
from domain.transfers import TransferStatus
from projections.accounts import accounts


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

    def writing_to(self, tables: dict[str, str]) -> TransfersProjection:
        """The same projection writing into other tables (live name -> other name)."""
        return TransfersProjection(transfers_table(tables["transfers"]))

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Update the transfer's row; the version guard makes a replayed event a no-op."""
        table, data = self._table, event.data
        if event.type == "TransferRequested":
            await conn.execute(
                insert(table)
                .values(
                    id=event.stream_id,
                    from_account_id=data["from_account_id"],
                    to_account_id=data["to_account_id"],
                    amount=Decimal(data["amount"]),
                    status=TransferStatus.REQUESTED.value,
                    steps=[],
                    created_at=event.recorded_at,
                    updated_at=event.recorded_at,
                    version=event.version,
                )
                .on_conflict_do_nothing(index_elements=[table.c.id])
            )
            return
        values: dict[str, object] = {"updated_at": event.recorded_at, "version": event.version}
        if event.type == "TransferStepCompleted":
            values["steps"] = func.array_append(table.c.steps, data["step"])
        elif event.type == "TransferStepCompensated":
            values["steps"] = func.array_append(table.c.steps, f"compensated:{data['step']}")
        elif event.type == "TransferCompleted":
            values["status"] = TransferStatus.COMPLETED.value
        elif event.type == "TransferRejected":
            values["status"] = TransferStatus.REJECTED.value
            values["reason"] = data["reason"]
            details = data.get("details")
            values["reason_details"] = details if isinstance(details, dict) else None
        await conn.execute(
            update(table)
            .where(table.c.id == event.stream_id, table.c.version < event.version)
            .values(**values)
        )

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        """Apply events one by one, in order."""
        for event in events:
            await self.apply(conn, event)


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
