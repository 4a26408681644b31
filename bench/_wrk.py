"""Load from `wrk`: one round of POSTs, with its latency percentiles.

`wrk` is a C load generator (Debian package `wrk`; `make bench` installs it). It runs in its
own process with one thread, so it takes a small, measured share of the CPUs. A Lua script
sets the headers and each request's body (the given bodies in turn) and prints the round's
figures as JSON when it ends. Running this module as a script does nothing.
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# `done` runs once at the end of the round: the counts and the latency percentiles in µs.
SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {authorization}

local bodies = {{{bodies}}}
local next_body = 0
request = function()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d,'
    .. ' "socket_errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""


@dataclass
class WrkRound:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def lua_string(value: str) -> str:
    """A Lua string literal of `value` (JSON's escapes are valid Lua ones for ASCII text)."""
    return json.dumps(value, ensure_ascii=True)


async def wrk_round(
    url: str, bodies: Sequence[bytes], authorization: str, connections: int, seconds: float
) -> WrkRound:
    """`connections` keep-alive connections POSTing the bodies in turn, back to back, for
    `seconds`."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make bench` installs it")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(
            SCRIPT.format(
                bodies=", ".join(lua_string(body.decode()) for body in bodies),
                authorization=lua_string(authorization),
            )
        )
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "30s", "-s", script.name, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.decode()}{out.decode()}")
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    if figures["non_2xx"] or figures["socket_errors"]:
        raise RuntimeError(f"wrk saw failed requests: {figures}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return WrkRound(
        requests=int(figures["requests"]),
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        cpu_seconds=cpu,
    )


if __name__ == "__main__":
    # `make bench` runs only bench/[!_]*.py; this helper module has nothing to measure.
    sys.exit(0)
