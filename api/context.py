"""What a resolver may use: long-lived services and the caller."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket
from temporalio.client import Client

from api.auth import Caller, TokenCheck
from runtime.config import Settings


@dataclass(frozen=True)
class Services:
    """Created once when the API starts: settings, the database engine, the Temporal client."""

    settings: Settings
    engine: AsyncEngine
    temporal: Client
    tokens: TokenCheck


@dataclass(frozen=True)
class Context:
    """One request's context."""

    services: Services
    request: Request | WebSocket
    caller: Caller

    @property
    def actor(self) -> str:
        """Who to record as the actor of the caller's commands."""
        return self.caller.name
