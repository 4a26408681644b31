"""The ASGI application: GraphQL (with GraphiQL) at /graphql, health probes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from adapters.database import create_engine
from adapters.temporal import connect
from api.context import Context, Services
from api.schema import build_schema
from runtime.config import Settings


class SagalineGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with sagaline's typed context."""

    def __init__(self, state: dict[str, Services]) -> None:
        super().__init__(build_schema())
        self._state = state

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(services=self._state["services"], request=request)


def create_app(settings: Settings) -> Starlette:
    """The API app; its services connect when the app starts, not at import."""
    state: dict[str, Services] = {}
    graphql = SagalineGraphQL(state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.require_database_url(), pool_size=20)
        temporal = await connect(settings.require_temporal_address(), settings.temporal_namespace)
        services = Services(settings=settings, engine=engine, temporal=temporal)
        state["services"] = services
        try:
            yield
        finally:
            await engine.dispose()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        services = state.get("services")
        if services is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            async with services.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )
