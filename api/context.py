"""What a resolver may use: long-lived services and the caller."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket
from temporalio.client import Client

from runtime.config import Settings


@dataclass(frozen=True)
class Services:
    """Created once when the API starts: settings, the database engine, the Temporal client."""

    settings: Settings
    engine: AsyncEngine
    temporal: Client


@dataclass(frozen=True)
class Context:
    """One request's context."""

    services: Services
    request: Request | WebSocket
    actor: str = "anonymous"
