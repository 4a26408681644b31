"""The quick chaos run: every fault once against the whole deployment, every invariant held.

The full run (`make chaos`, RELIABILITY.md) kills each worker and sends ten times the
transfers; this one keeps `make test` within its budget.
"""

from __future__ import annotations

import sys

from tests.chaos.suite import QUICK, run_chaos


async def test_every_invariant_holds_through_each_fault_once() -> None:
    report = await run_chaos(QUICK)
    sys.stdout.write(report.summary() + "\n")
    failed = [f"{check.name}: {check.detail}" for check in report.checks if not check.held]
    assert report.held, "\n".join(failed) + "\n\n" + report.summary()
