"""The API's /metrics and /status: its registry, made when the app is created."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from adapters.metrics import CONTENT_TYPE, METRICS_PATH, PoolUsage, exposition, new_registry
from api.context import Services
from api.metrics import GraphQLMetrics
from api.status import (
    StatusGauges,
    read_followers_bounded,
    read_parked,
    render_status_page,
)

STATUS_PATH = "/status"


class ApiMetrics:
    """Every metric family the API exports, in one registry."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = new_registry()
        self.graphql = GraphQLMetrics(self.registry)
        self.status = StatusGauges(self.registry)
        self._pools: PoolUsage | None = None

    def watch_pool(self, engine: AsyncEngine) -> None:
        """Export the usage of the API's database pool (until `forget_pool`)."""
        self.forget_pool()
        self._pools = PoolUsage([("api", engine)])
        self.registry.register(self._pools)

    def forget_pool(self) -> None:
        if self._pools is not None:
            self.registry.unregister(self._pools)
            self._pools = None


def observability_routes(state: dict[str, Services], metrics: ApiMetrics | None) -> list[Route]:
    """GET /metrics (Prometheus text, unless `metrics` is None) and GET /status (HTML), both
    without a token."""

    async def refresh_followers() -> None:
        assert metrics is not None
        services = state.get("services")
        if services is not None:
            standing = await read_followers_bounded(services.engine)
            if standing is not None:
                metrics.status.show_followers(standing)

    async def refresh_parked() -> None:
        assert metrics is not None
        services = state.get("services")
        if services is not None:
            parked = await read_parked(services.temporal)
            if parked is not None:
                metrics.status.parked.set(parked)

    async def metrics_page(request: Request) -> Response:
        assert metrics is not None
        body = await exposition(metrics.registry, [refresh_followers, refresh_parked])
        return Response(body, media_type=CONTENT_TYPE)

    async def status_page(request: Request) -> Response:
        services = state.get("services")
        if services is None:
            return HTMLResponse("<p>starting</p>", status_code=503)
        followers = await read_followers_bounded(services.engine)
        parked = await read_parked(services.temporal)
        page = render_status_page(followers, parked, services.settings.temporal_ui_base())
        return HTMLResponse(page, status_code=200 if followers is not None else 503)

    status = Route(STATUS_PATH, status_page, methods=["GET"])
    if metrics is None:
        return [status]
    return [Route(METRICS_PATH, metrics_page, methods=["GET"]), status]
