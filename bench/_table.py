"""The summary `make bench` prints last: every benchmark's figure against its goal.

Usage: `python bench/_table.py RESULT...`, where each RESULT is a file holding one
benchmark's stdout; its last JSON line is the result. A file without one (the script failed)
gets a row saying so. Besides its main figure a result may list more in `figures`, each with
its own `name`, `value`, `baseline`, `ratio`, `goal` and `goal_met`; they get rows of their own.
A goal that is not a minimum ratio is named by `goal_text` (e.g. "p99 ≤ 100 ms"); otherwise a
number in `goal` reads as "ratio ≥ goal".

Run without arguments it does nothing, like the other helpers `make bench` skips.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = ("bench", "value", "baseline", "ratio", "goal", "met?")


def last_result(text: str) -> dict[str, Any] | None:
    """The last line of `text` that is a JSON object, if any."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def figure(value: object, unit: object = None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and abs(value) >= 100:
        value = round(value)
    return f"{value} {unit}" if unit else str(value)


def goal_cell(result: dict[str, Any]) -> str:
    if result.get("goal_text"):
        return str(result["goal_text"])
    goal = result.get("goal")
    return "—" if goal is None else f"ratio ≥ {goal}"


def met_cell(result: dict[str, Any]) -> str:
    met = result.get("goal_met")
    return "—" if met is None else ("yes" if met else "NO")


def rows_of(name: str, result: dict[str, Any] | None) -> list[tuple[str, ...]]:
    if result is None:
        return [(name, "failed: no JSON result", "", "", "", "")]
    unit = result.get("unit")
    rows: list[tuple[str, ...]] = [
        (
            str(result.get("bench", name)),
            figure(result.get("value"), unit),
            figure(result.get("baseline"), unit),
            figure(result.get("ratio")),
            goal_cell(result),
            met_cell(result),
        )
    ]
    for extra in result.get("figures") or []:
        rows.append(
            (
                f"  {extra.get('name', '')}",
                figure(extra.get("value"), extra.get("unit", unit)),
                figure(extra.get("baseline"), extra.get("baseline_unit", extra.get("unit", unit))),
                figure(extra.get("ratio")),
                goal_cell(extra),
                met_cell(extra),
            )
        )
    return rows


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return "\n".join(
        [line(COLUMNS), line(["-" * width for width in widths]), *(line(r) for r in rows)]
    )


def main(paths: Sequence[str]) -> int:
    rows: list[tuple[str, ...]] = []
    for path in paths:
        file = Path(path)
        text = file.read_text() if file.exists() else ""
        rows.extend(rows_of(file.stem, last_result(text)))
    if rows:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
