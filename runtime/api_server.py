"""The API process: the GraphQL app served by uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from api.app import create_app
from api.auth import TokenConfigurationError, parse_tokens
from runtime.config import ConfigurationError, Settings
from runtime.request_heads import bounded_heads_protocol
from runtime.startup import freeze_startup_objects

log = logging.getLogger(__name__)


async def serve_api(settings: Settings) -> None:
    """Serve the API until cancelled."""
    try:
        tokens = parse_tokens(settings.api_tokens)
    except TokenConfigurationError as error:
        raise ConfigurationError(str(error)) from None
    if not tokens:
        log.warning("SAGALINE_API_TOKENS is empty: every GraphQL request will be refused")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        # JSON lines: uvicorn's loggers go to the root handler, in its format.
        log_config=LOGGING_CONFIG if settings.log_format == "text" else None,
        lifespan="on",
        # A websocket message is bounded as an HTTP body is (api/edge.py): a larger one
        # closes its socket with 1009 before it is parsed.
        ws_max_size=settings.api_max_body_bytes,
        # A request's head is bounded in size and in time (runtime/request_heads.py).
        http=bounded_heads_protocol(),
    )
    freeze_startup_objects()
    await uvicorn.Server(config).serve()
