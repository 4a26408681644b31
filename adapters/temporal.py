"""The Temporal client factory."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.service import RPCError


async def connect(address: str, namespace: str, wait_seconds: float = 30.0) -> Client:
    """Connect to Temporal, retrying while the frontend is still starting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            return await Client.connect(address, namespace=namespace)
        except (RPCError, RuntimeError, OSError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.5)
