"""Projector activities: one long-running follower per projection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.following import Pacing, follow
from domain.event_store import EventStore
from projections.catalog import find_projection
from projections.projector import Projector
from projections.rebuild import ProjectionRebuild, drop_abandoned_rebuilds

PROJECTION_NOT_FOUND = "ProjectionNotFound"


@dataclass(frozen=True)
class ProjectInput:
    """Which projection to run, and for how long before handing back to the workflow."""

    projection: str
    run_seconds: float = 300.0


class ProjectionActivities:
    """Activities keeping read models up to date, and rebuilding them."""

    def __init__(
        self,
        projectors: Mapping[str, Projector],
        database_url: str,
        engine: AsyncEngine,
        store: EventStore,
        pacing: Mapping[str, Pacing] | None = None,
    ) -> None:
        self._projectors = projectors
        # Each projector's (by projection name; unnamed: a batch after every move).
        self._pacing = pacing or {}
        self._database_url = database_url
        self._engine = engine
        self._store = store

    @activity.defn
    async def rebuild_projection(self, projection: str) -> int:
        """Replay a projection into fresh tables and swap them in; returns its position.

        First drops what rebuilds of it that no process runs left (an attempt before this
        one, killed with its process)."""
        found = find_projection(projection)
        if found is None:
            raise ApplicationError(
                f"no projection named {projection!r}", type=PROJECTION_NOT_FOUND, non_retryable=True
            )
        await drop_abandoned_rebuilds(self._engine, [found])
        result = await ProjectionRebuild(self._engine, self._store, found).run(
            lambda position, head: activity.heartbeat(position, head)
        )
        return result.position

    @activity.defn
    async def project_events(self, params: ProjectInput) -> int:
        """Apply events to one projection until the run time passes; returns how far it moved."""
        projector = self._projectors[params.projection]
        try:
            return await follow(
                projector.run_batch,
                self._database_url,
                params.run_seconds,
                fence=projector.checkpoint,
                pacing=self._pacing.get(params.projection),
            )
        finally:
            await projector.stop_reading_ahead()
