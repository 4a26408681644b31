"""The GraphQL benchmark's baseline: the API's serving stack with a constant resolver.

Run as `python bench/_baseline_api.py PORT` by `running_baseline`, in a child process: a
Starlette + Strawberry app through uvicorn with the same settings as `runtime.api_server`
(log level INFO with access log, lifespan on, the same logging setup as `runtime.cli`, and
what start-up built frozen out of garbage collection), the same bearer-token guard
(`api.app.TokenGuard` over `api.auth.TokenCheck`), the same safety extensions
(`api.safety.safety_extensions`) and the real `Account` GraphQL type. Its `account`
resolver returns one constant `Account` without any I/O.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import cast

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import strawberry  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Route  # noqa: E402
from strawberry.asgi import GraphQL  # noqa: E402

from api.accounts.types import Account, AccountStatus  # noqa: E402
from api.app import TokenGuard  # noqa: E402
from api.auth import TokenCheck, parse_tokens  # noqa: E402
from api.context import Services  # noqa: E402
from api.safety import safety_extensions  # noqa: E402
from runtime.embedded.process import ChildProcess, http_answers  # noqa: E402
from runtime.ports import free_port  # noqa: E402

SCRIPT = Path(__file__).resolve()
READY_WITHIN = 120.0
STOP_GRACE = 20.0

_NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONSTANT_ACCOUNT = Account(
    id=strawberry.ID("00000000-0000-0000-0000-00000000acc0"),
    owner_id=strawberry.ID("00000000-0000-0000-0000-00000000a5e0"),
    balance=Decimal("1000.00"),
    currency="EUR",
    status=AccountStatus.OPEN,
    opened_at=_NOW,
    last_updated=_NOW,
    version=2,
)


@strawberry.type
class ConstantQuery:
    @strawberry.field(description="Always the same account.")  # type: ignore[untyped-decorator]
    async def account(
        self, id: strawberry.ID, consistent_with: str | None = None
    ) -> Account | None:
        return CONSTANT_ACCOUNT


def baseline_app(tokens: str) -> Starlette:
    """Starlette + Strawberry with the API's token guard and safety extensions."""
    schema = strawberry.Schema(query=ConstantQuery, extensions=safety_extensions())
    # TokenGuard only reads `services.tokens`.
    state = cast(
        dict[str, Services], {"services": SimpleNamespace(tokens=TokenCheck(parse_tokens(tokens)))}
    )
    graphql = TokenGuard(GraphQL[None, None](schema, allow_queries_via_get=False), state)
    return Starlette(routes=[Route("/graphql", graphql, methods=["GET", "POST"])])


def serve_baseline(port: int, tokens: str) -> None:
    """Serve the baseline app as runtime.api_server serves the API."""
    import uvicorn

    from runtime.startup import freeze_startup_objects

    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    config = uvicorn.Config(
        baseline_app(tokens), host="127.0.0.1", port=port, log_level="info", lifespan="on"
    )
    freeze_startup_objects()
    uvicorn.Server(config).run()


@contextlib.asynccontextmanager
async def running_baseline(directory: Path, tokens: str) -> AsyncIterator[tuple[str, int]]:
    """The baseline server in a child process: its GraphQL URL and pid."""
    port = free_port()
    server = ChildProcess(
        "baseline api",
        [sys.executable, str(SCRIPT), str(port), tokens],
        directory / "baseline-api.log",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=REPO_ROOT,
    )
    server.start()
    try:
        await server.wait_ready(
            lambda: http_answers("127.0.0.1", port, "/graphql"), within=READY_WITHIN
        )
        yield f"http://127.0.0.1:{port}/graphql", server.pid
    finally:
        await server.stop(STOP_GRACE)


if __name__ == "__main__":
    # `make bench` runs only bench/[!_]*.py; this module serves when given a port.
    if len(sys.argv) == 3:
        serve_baseline(int(sys.argv[1]), sys.argv[2])
    sys.exit(0)
