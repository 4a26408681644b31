"""What every long-running process does once it has started, before it serves."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 5000
"""Tracked objects allocated (net of those freed) before a young collection, 700 by default.
Requests in flight keep a few hundred each alive until they answer: at 700, sixteen
concurrent queries set young passes off by their live objects alone, and a few more
objects per request (a traced one's span, context and flags) make those passes come
several times as often. Above the working set in flight, young passes follow garbage."""


def freeze_startup_objects() -> None:
    """Exempt what start-up built from every later garbage collection.

    Start-up builds modules, the schema and workflow definitions: well over 100,000 tracked
    objects once the API or the worker is imported. The collector's full pass walks every
    one of them and costs far more than the query or activity it interrupts, and requests
    that wait on Postgres keep their objects alive across young collections, so full passes
    come often. Frozen objects are never walked again; garbage found now is freed first.
    Young passes then wait for YOUNG_THRESHOLD objects.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
