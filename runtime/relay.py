"""Operator commands on the relay: rewind it to publish again from a position."""

from __future__ import annotations

import sys

from adapters import relay_ledger
from adapters.database import create_engine
from adapters.relay_checkpoint import RELAY_CHECKPOINT
from runtime.config import ConfigurationError, Settings


async def rewind(settings: Settings, position: int, name: str = RELAY_CHECKPOINT) -> int:
    """Move the relay's checkpoint back to `position`; it publishes again from there."""
    if position < 0:
        raise ConfigurationError(f"--to {position}: a position is 0 or more")
    engine = create_engine(settings.require_database_url(), pool_size=2)
    try:
        async with engine.begin() as conn:
            old = await relay_ledger.checkpoint(conn, name)
            if position > old:
                raise ConfigurationError(
                    f"--to {position} is past the relay's position {old}: moving it forward"
                    " would skip events, so rewind only goes back"
                )
            await relay_ledger.rewind(conn, name, old, position)
    finally:
        await engine.dispose()
    sys.stdout.write(f"relay: rewound from position {old} to {position}\n")
    return 0
