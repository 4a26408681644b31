"""Projector activities: one long-running follower per projection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from temporalio import activity

from activities.following import follow
from projections.projector import Projector


@dataclass(frozen=True)
class ProjectInput:
    """Which projection to run, and for how long before handing back to the workflow."""

    projection: str
    run_seconds: float = 300.0


class ProjectionActivities:
    """Activities keeping read models up to date."""

    def __init__(self, projectors: Mapping[str, Projector], database_url: str) -> None:
        self._projectors = projectors
        self._database_url = database_url

    @activity.defn
    async def project_events(self, params: ProjectInput) -> int:
        """Apply events to one projection until the run time passes; returns how far it moved."""
        projector = self._projectors[params.projection]
        return await follow(projector.run_batch, self._database_url, params.run_seconds)
