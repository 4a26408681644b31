"""Services that accept connections but never answer: the doctor still reports within its bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runtime.config import Settings
from runtime.doctor.examination import examine, exit_status
from runtime.doctor.findings import Verdict

WITHIN = 1.0


@pytest.fixture
async def silent_address() -> AsyncIterator[str]:
    """`host:port` of a server that takes connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_every_service_that_hangs_gets_its_line_within_the_bound(
    silent_address: str,
) -> None:
    settings = Settings(
        database_url=f"postgresql://postgres@{silent_address}/sagaline",
        temporal_address=silent_address,
        kafka_bootstrap=silent_address,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    findings = await examine(settings, WITHIN)
    elapsed = loop.time() - started

    # The three are examined at once; the broker's client is also given WITHIN to close, so
    # 2 * WITHIN plus the machine's own delays. Unbounded, the clients wait 30 s and more.
    assert elapsed < 2 * WITHIN + 10, elapsed
    by_check = {finding.check: finding for finding in findings}
    for check in ("postgres", "temporal", "broker"):
        assert by_check[check].verdict is Verdict.PROBLEM, by_check[check]
        says = by_check[check].says
        assert says.startswith("not reachable at") and silent_address in says, says
        assert says.endswith("(no answer within 1 s)"), says
    assert exit_status(findings) == 1
    assert [f.check for f in findings if f.verdict is Verdict.PROBLEM] == [
        "postgres",
        "temporal",
        "broker",
    ]
