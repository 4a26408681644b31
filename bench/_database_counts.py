"""What an engine did: statements, their wall time, transactions and errors (engine events).

Running it as a script does nothing.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class DatabaseCounts:
    """What the worker's engine did: statements, their wall time, transactions, errors."""

    statements: int = 0
    statement_seconds: float = 0.0
    checkouts: int = 0
    commits: int = 0
    rollbacks: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)


def count_database(engine: AsyncEngine, counts: DatabaseCounts) -> None:
    """Attach listeners to the engine; each statement's wall time includes event-loop waits."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info.pop("bench_started", None)
        if started is None:
            return  # began before the listeners were attached (a follower's statement)
        counts.statements += 1
        counts.statement_seconds += time.perf_counter() - started
        counts.kinds[statement_kind(statement)] += 1

    @event.listens_for(sync_engine, "handle_error")
    def failed(context: Any) -> None:
        conn = context.connection
        if conn is not None:
            conn.info.pop("bench_started", None)
        sqlstate = getattr(context.original_exception, "sqlstate", None)
        counts.errors[str(sqlstate or type(context.original_exception).__name__)] += 1

    @event.listens_for(sync_engine, "commit")
    def committed(conn: Any) -> None:
        counts.commits += 1

    @event.listens_for(sync_engine, "rollback")
    def rolled_back(conn: Any) -> None:
        counts.rollbacks += 1

    @event.listens_for(sync_engine.pool, "checkout")
    def checked_out(*args: Any) -> None:
        counts.checkouts += 1


def statement_kind(statement: str) -> str:
    """A short label: the append function, or the table a SELECT reads."""
    flat = " ".join(statement.split())
    if "sagaline_append" in flat:
        return "append"
    if flat.startswith("SELECT") and " FROM " in flat:
        return "select " + flat.split(" FROM ", 1)[1].split(" ", 1)[0]
    return flat.split(" ", 1)[0].lower()


def database_summary(counts: DatabaseCounts, transfers: int) -> dict[str, Any]:
    return {
        "statements_per_transfer": round(counts.statements / transfers, 2),
        "statement_wall_ms_per_transfer": round(1000 * counts.statement_seconds / transfers, 2),
        "checkouts_per_transfer": round(counts.checkouts / transfers, 2),
        "commits_per_transfer": round(counts.commits / transfers, 2),
        "rollbacks_per_transfer": round(counts.rollbacks / transfers, 2),
        "statement_kinds_per_transfer": {
            kind: round(n / transfers, 2) for kind, n in counts.kinds.most_common()
        },
        "errors": dict(counts.errors),
    }


if __name__ == "__main__":
    sys.exit(0)
