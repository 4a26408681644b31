"""The Temporal client factory."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from adapters.tracing import tracing_on


async def connect(address: str, namespace: str, wait_seconds: float = 30.0) -> Client:
    """Connect to Temporal, retrying while the frontend is still starting.

    Payloads go through pydantic, so exact decimals and dataclasses survive the round trip.
    With tracing on, workflow starts, workflows and activities are spans (a worker takes the
    client's interceptor), their context carried in Temporal's headers.
    """
    interceptors: list[Interceptor] = [TracingInterceptor()] if tracing_on() else []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            return await Client.connect(
                address,
                namespace=namespace,
                data_converter=pydantic_data_converter,
                interceptors=interceptors,
            )
        except (RPCError, RuntimeError, OSError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.5)
