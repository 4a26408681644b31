"""A workflow that reads the wall clock: the mistake the tests' workflow sandbox must catch.

It lives in a module of its own with nothing but standard-library and Temporal imports, since
the sandbox re-imports a workflow's module for every run.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn(failure_exception_types=[workflow.NondeterminismError])
class ReadsTheClock:
    """Returns the wall clock's time, which a replay would not see again."""

    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()
