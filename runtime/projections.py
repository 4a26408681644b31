"""Operator commands on projections: status, rebuild (with a progress bar), retry, skip."""

from __future__ import annotations

import sys

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.relay_checkpoint import relay_status
from projections import projector
from projections.catalog import find_projection, projection_names
from projections.rebuild import ProjectionRebuild
from runtime.config import ConfigurationError, Settings

BAR_WIDTH = 30


async def print_status(settings: Settings) -> int:
    """Print every projection's position, lag and failure, then the relay's (and recoveries)."""
    engine = create_engine(settings.require_database_url(), pool_size=2)
    try:
        statuses = await projector.status(engine, projection_names())
        relay = await relay_status(engine)
    finally:
        await engine.dispose()
    for status in statuses:
        state = "running" if status.failure is None else "STOPPED"
        sys.stdout.write(
            f"{status.name:<20} {state:<8} position {status.position:>10}  lag {status.lag}\n"
        )
        if status.failure is not None:
            failure = status.failure
            sys.stdout.write(
                f"  stopped at position {failure.position} ({failure.event_type},"
                f" event {failure.event_id}): {failure.error}\n"
            )
    sys.stdout.write(
        f"{'relay':<20} {'':<8} position {relay.position:>10}  lag {relay.lag}"
        f"  recoveries {relay.recoveries}\n"
    )
    return 0


async def rebuild(settings: Settings, name: str) -> int:
    """Rebuild a projection from position 0 and swap it in, showing progress."""
    projection = _known(name)
    engine = create_engine(settings.require_database_url(), pool_size=4)
    try:
        result = await ProjectionRebuild(engine, PostgresEventStore(engine), projection).run(
            _draw_progress
        )
    finally:
        await engine.dispose()
    sys.stderr.write("\n")
    sys.stdout.write(f"rebuilt {result.projection} up to position {result.position}\n")
    return 0


async def retry(settings: Settings, name: str) -> int:
    """Clear a stopped projection's failure so it tries the event again."""
    _known(name)
    engine = create_engine(settings.require_database_url(), pool_size=2)
    try:
        cleared = await projector.retry(engine, name)
    finally:
        await engine.dispose()
    sys.stdout.write(f"{name}: {'retrying' if cleared else 'was not stopped'}\n")
    return 0


async def skip(settings: Settings, name: str) -> int:
    """Move a stopped projection past the event it failed on."""
    _known(name)
    engine = create_engine(settings.require_database_url(), pool_size=2)
    try:
        skipped = await projector.skip(engine, name)
    finally:
        await engine.dispose()
    message = "was not stopped" if skipped is None else f"skipped position {skipped}"
    sys.stdout.write(f"{name}: {message}\n")
    return 0


def _known(name: str) -> projector.Projection:
    projection = find_projection(name)
    if projection is None:
        known = ", ".join(projection_names())
        raise ConfigurationError(f"no projection named {name!r} (known: {known})")
    return projection


def _draw_progress(position: int, head: int) -> None:
    share = 1.0 if head == 0 else min(position / head, 1.0)
    filled = int(share * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    sys.stderr.write(f"\r[{bar}] {share:6.1%}  {position}/{head}")
    sys.stderr.flush()
