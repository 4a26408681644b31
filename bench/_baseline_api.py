"""The GraphQL benchmark's baseline: what a user would write by hand for `account(id)`.

Run as `python bench/_baseline_api.py PORT TOKENS DATABASE_URL` by `running_baseline`, in a
child process: one Starlette endpoint at /graphql under uvicorn with the same settings as
`runtime.api_server` (log level INFO with access log, lifespan on, the same logging setup,
what start-up built frozen out of garbage collection), but uvicorn's own httptools protocol:
the request-head bounds of `runtime.request_heads` are the project's own work (about 8 µs a
request), which a hand-written endpoint would not have. It has the same bearer-token guard
(`api.app.TokenGuard` over `api.auth.TokenCheck`). It takes the POSTed JSON, runs the same
SELECT on the accounts read model through a psycopg 3 pool (prepared), and answers the same
JSON the API gives. No GraphQL library: no parse, no validation, no resolver machinery.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from psycopg_pool import AsyncConnectionPool  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from adapters.database import libpq_url  # noqa: E402
from api.app import TokenGuard  # noqa: E402
from api.auth import TokenCheck, parse_tokens  # noqa: E402
from api.context import Services  # noqa: E402
from runtime.embedded.process import ChildProcess, http_answers  # noqa: E402
from runtime.ports import free_port  # noqa: E402

SCRIPT = Path(__file__).resolve()
READY_WITHIN = 120.0
STOP_GRACE = 20.0
POOL_SIZE = 20

ACCOUNT_BY_ID = (
    "SELECT id, owner_id, balance, currency, status, opened_at, last_updated, version"
    " FROM accounts WHERE id = %s"
)


def account_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """The row as the API's `Account` type answers it (Decimal as text, ISO timestamps)."""
    id_, owner_id, balance, currency, status, opened_at, last_updated, version = row
    return {
        "id": id_,
        "ownerId": owner_id,
        "balance": str(balance),
        "currency": currency,
        "status": status,
        "openedAt": opened_at.isoformat(),
        "lastUpdated": last_updated.isoformat(),
        "version": version,
    }


def baseline_app(tokens: str, database_url: str) -> Starlette:
    """One hand-written endpoint behind the API's token guard."""
    pool = AsyncConnectionPool(
        libpq_url(database_url), min_size=POOL_SIZE, max_size=POOL_SIZE, open=False,
        kwargs={"autocommit": True},
    )  # fmt: skip

    async def account(request: Request) -> Response:
        body = json.loads(await request.body())
        async with pool.connection() as conn:
            cursor = await conn.execute(ACCOUNT_BY_ID, [body["variables"]["id"]], prepare=True)
            row = await cursor.fetchone()
        return JSONResponse({"data": {"account": None if row is None else account_json(row)}})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    # TokenGuard only reads `services.tokens` (and `admit`, which an API token passes).
    services = SimpleNamespace(tokens=TokenCheck(parse_tokens(tokens)), admit=_admit)
    state = cast(dict[str, Services], {"services": services})
    guarded = TokenGuard(Route("/graphql", account, methods=["POST"]), state)
    return Starlette(
        routes=[Route("/graphql", guarded, methods=["GET", "POST"])], lifespan=lifespan
    )


async def _admit(caller: object) -> object:
    return caller


def serve_baseline(port: int, tokens: str, database_url: str) -> None:
    """Serve the baseline app as runtime.api_server serves the API."""
    import uvicorn

    from runtime.startup import freeze_startup_objects

    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    config = uvicorn.Config(
        baseline_app(tokens, database_url),
        host="127.0.0.1",
        port=port,
        log_level="info",
        lifespan="on",
    )
    freeze_startup_objects()
    uvicorn.Server(config).run()


@contextlib.asynccontextmanager
async def running_baseline(
    directory: Path, tokens: str, database_url: str
) -> AsyncIterator[tuple[str, int]]:
    """The baseline server in a child process: its GraphQL URL and pid."""
    port = free_port()
    server = ChildProcess(
        "baseline api",
        [sys.executable, str(SCRIPT), str(port), tokens, database_url],
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
    if len(sys.argv) == 4:
        serve_baseline(int(sys.argv[1]), sys.argv[2], sys.argv[3])
    sys.exit(0)
