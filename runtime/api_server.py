"""The API process: the GraphQL app served by uvicorn."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from runtime.config import Settings


async def serve_api(settings: Settings) -> None:
    """Serve the API until cancelled."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )
    await uvicorn.Server(config).serve()
