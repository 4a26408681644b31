"""The API process: the GraphQL app served by uvicorn."""

from __future__ import annotations

import gc
import logging

import uvicorn

from api.app import create_app
from api.auth import TokenConfigurationError, parse_tokens
from runtime.config import ConfigurationError, Settings

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Exempt what start-up built (modules, the schema) from every later garbage collection.

    The collector's full pass walks every tracked object, well over 100,000 once the API is
    imported, and costs far more than the query it interrupts. Queries that wait on Postgres
    keep their objects alive across young collections, so full passes come often. Frozen
    objects are never walked again; garbage found now is freed first.
    """
    gc.collect()
    gc.freeze()


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
        lifespan="on",
    )
    freeze_startup_objects()
    await uvicorn.Server(config).serve()
