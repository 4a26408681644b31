"""Poison commands: a trigger on the events table that rejects the events a test marked.

It raises check_violation, which is neither a business rule nor an outage: a command whose
events it rejects fails the same way however often it is tried.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

INSTALL = (
    "CREATE TABLE IF NOT EXISTS poison_markers (marker text PRIMARY KEY, event_type text)",
    """
    CREATE OR REPLACE FUNCTION reject_poisoned_events() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (
        SELECT 1 FROM poison_markers p
        WHERE strpos(NEW.data::text, p.marker) > 0 AND coalesce(p.event_type = NEW.type, true)
      ) THEN
        RAISE EXCEPTION 'event % carries a poison marker', NEW.type
          USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$
    """,
    "DROP TRIGGER IF EXISTS reject_poisoned_events ON events",
    """
    CREATE TRIGGER reject_poisoned_events BEFORE INSERT ON events
      FOR EACH ROW EXECUTE FUNCTION reject_poisoned_events()
    """,
)
UNINSTALL = (
    "DROP TRIGGER IF EXISTS reject_poisoned_events ON events",
    "DROP FUNCTION IF EXISTS reject_poisoned_events()",
    "DROP TABLE IF EXISTS poison_markers",
)


class Poison:
    """Marks events as poison in a test's database: any event whose data holds the marker."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def install(self) -> None:
        await self._run(INSTALL)

    async def uninstall(self) -> None:
        await self._run(UNINSTALL)

    async def mark(self, marker: str, event_type: str | None = None) -> None:
        """Reject every event (of `event_type`, if given) whose data contains `marker`."""
        async with self._engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO poison_markers (marker, event_type) VALUES (:m, :t)"),
                {"m": marker, "t": event_type},
            )

    async def cure(self, marker: str) -> None:
        """Let events carrying `marker` through again."""
        async with self._engine.begin() as conn:
            await conn.execute(text("DELETE FROM poison_markers WHERE marker = :m"), {"m": marker})

    async def _run(self, statements: tuple[str, ...]) -> None:
        async with self._engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
