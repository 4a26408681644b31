"""Where the read side stands: projection and relay lags and parked sagas, as gauges for
/metrics and as a small HTML page at /status for a person without Grafana.

Both show aggregate numbers only (positions, lags, counts): no ids, no event data, no error
text, so they need no token.
"""

from __future__ import annotations

import asyncio
import html
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters.relay_checkpoint import relay_status
from adapters.temporal import count_parked_sagas
from projections import projector
from projections.catalog import projection_names

log = logging.getLogger(__name__)

READ_WITHIN_SECONDS = 2.0


@dataclass(frozen=True)
class ProjectionStanding:
    name: str
    position: int
    lag: int
    stopped_at: int | None


@dataclass(frozen=True)
class FollowerStanding:
    """The store's head and how far each projection and the relay have followed it."""

    head: int
    projections: list[ProjectionStanding]
    relay_position: int
    relay_lag: int


async def read_followers(engine: AsyncEngine) -> FollowerStanding:
    """Every projection's and the relay's position and lag, from their checkpoints."""
    statuses = await projector.status(engine, projection_names())
    relay = await relay_status(engine)
    return FollowerStanding(
        head=relay.head,
        projections=[
            ProjectionStanding(
                s.name, s.position, s.lag, None if s.failure is None else s.failure.position
            )
            for s in statuses
        ],
        relay_position=relay.position,
        relay_lag=relay.lag,
    )


class StatusGauges:
    """The gauges of where the read side stands, refreshed when /metrics is scraped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.head = Gauge(
            "sagaline_event_store_head_position",
            "Global position of the newest event in the store.",
            registry=registry,
        )
        self.projection_position = Gauge(
            "sagaline_projection_position",
            "Global position a projection has applied up to.",
            ["projection"],
            registry=registry,
        )
        self.projection_lag = Gauge(
            "sagaline_projection_lag_events",
            "Events in the store a projection has not applied yet.",
            ["projection"],
            registry=registry,
        )
        self.projection_stopped = Gauge(
            "sagaline_projection_stopped",
            "1 while a projection is stopped on an event it failed on, else 0.",
            ["projection"],
            registry=registry,
        )
        self.relay_position = Gauge(
            "sagaline_relay_position",
            "Global position the relay has published to Kafka up to.",
            registry=registry,
        )
        self.relay_lag = Gauge(
            "sagaline_relay_lag_events",
            "Events in the store the relay has not published yet.",
            registry=registry,
        )
        self.parked = Gauge(
            "sagaline_sagas_waiting_for_operator",
            "Sagas parked as NEEDS_ATTENTION right now (Temporal's visibility store).",
            registry=registry,
        )

    def show_followers(self, standing: FollowerStanding) -> None:
        self.head.set(standing.head)
        for p in standing.projections:
            self.projection_position.labels(p.name).set(p.position)
            self.projection_lag.labels(p.name).set(p.lag)
            self.projection_stopped.labels(p.name).set(0 if p.stopped_at is None else 1)
        self.relay_position.set(standing.relay_position)
        self.relay_lag.set(standing.relay_lag)


async def read_parked(temporal: Client) -> int | None:
    """Sagas waiting for an operator; None when Temporal does not answer in time."""
    try:
        return await asyncio.wait_for(count_parked_sagas(temporal), READ_WITHIN_SECONDS)
    except Exception as error:
        log.info("counting parked sagas failed: %s", error)
        return None


async def read_followers_bounded(engine: AsyncEngine) -> FollowerStanding | None:
    """read_followers, or None when the database does not answer in time."""
    try:
        return await asyncio.wait_for(read_followers(engine), READ_WITHIN_SECONDS)
    except Exception as error:
        log.info("reading follower positions failed: %s", error)
        return None


PAGE_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1.5em}"
    "td,th{border:1px solid #ccc;padding:.3em .8em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}"
    ".bad{color:#b00020;font-weight:bold}"
)


def render_status_page(
    followers: FollowerStanding | None,
    parked: int | None,
    temporal_ui: str,
    now: datetime | None = None,
) -> str:
    """The /status page: a plain HTML table of lags and the parked sagas' count."""
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='10'><title>sagaline status</title>",
        f"<style>{PAGE_STYLE}</style></head><body>",
        f"<h1>sagaline status</h1><p>As of {moment}; refreshes every 10 s.</p>",
    ]
    if followers is None:
        parts.append("<p class='bad'>The database did not answer: positions are unknown.</p>")
    else:
        parts.append(f"<p>Head of the event store: position {followers.head}</p>")
        parts.append("<table><tr><th>follower</th><th>state</th><th>position</th><th>lag</th></tr>")
        for p in followers.projections:
            state = "running" if p.stopped_at is None else f"STOPPED at {p.stopped_at}"
            css = "" if p.stopped_at is None else " class='bad'"
            parts.append(
                f"<tr><td>projection {html.escape(p.name)}</td><td{css}>{state}</td>"
                f"<td>{p.position}</td><td>{p.lag}</td></tr>"
            )
        parts.append(
            f"<tr><td>relay (to Kafka)</td><td></td><td>{followers.relay_position}</td>"
            f"<td>{followers.relay_lag}</td></tr></table>"
        )
    if parked is None:
        parts.append("<p class='bad'>Temporal did not answer: parked sagas are unknown.</p>")
    else:
        css = " class='bad'" if parked else ""
        link = html.escape(temporal_ui, quote=True)
        parts.append(
            f"<p{css}>Sagas waiting for an operator (NEEDS_ATTENTION): {parked}."
            f" Find them in the <a href='{link}'>Temporal UI</a> with"
            ' <code>SagaStatus="NEEDS_ATTENTION"</code>.</p>'
        )
    parts.append("</body></html>")
    return "".join(parts)
