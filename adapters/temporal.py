"""The Temporal client factory."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from adapters.payloads import data_converter
from adapters.tracing import tracing_on


async def connect(
    address: str, namespace: str, wait_seconds: float = 30.0, runtime: Runtime | None = None
) -> Client:
    """Connect to Temporal, retrying while the frontend is still starting.

    Payloads go through pydantic (adapters/payloads.py), so exact decimals and dataclasses
    survive the round trip.
    `runtime` (default: the SDK's) is where the SDK's own metrics go.
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
                data_converter=data_converter(),
                runtime=runtime,
                interceptors=interceptors,
            )
        except (RPCError, RuntimeError, OSError):
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.5)


PARKED_SAGAS_QUERY = 'SagaStatus = "NEEDS_ATTENTION" AND ExecutionStatus = "Running"'
"""The visibility query of sagas waiting for an operator."""


async def count_parked_sagas(client: Client) -> int:
    """How many sagas wait as NEEDS_ATTENTION (Temporal's visibility store, eventually fresh)."""
    return (await client.count_workflows(PARKED_SAGAS_QUERY)).count
