"""The Grafana dashboard in the repository, and the metric names its queries use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = (
    Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "sagaline.json"
)
METRIC_NAME = re.compile(r"\b(?:sagaline|temporal)_[A-Za-z0-9_]+")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def queries() -> list[str]:
    """Every PromQL expression of every panel."""
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def metric_names() -> set[str]:
    """The sample names the queries read (`..._bucket`, `..._total` as written)."""
    return {name for expr in queries() for name in METRIC_NAME.findall(expr)}
