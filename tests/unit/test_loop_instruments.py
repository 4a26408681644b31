"""LoopCounter and LoopHistogram expose what prometheus_client's Counter and Histogram would."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.metrics import LoopCounter, LoopHistogram, new_registry

BUCKETS = (0.005, 0.01, 0.1, 1.0)


def parsed(registry: CollectorRegistry) -> dict[tuple[Any, ...], float]:
    """Every sample of the registry's text, by name and sorted labels; `_created` left out
    (the two sides create their series at different instants)."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def text_without_created(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, in order, but those of `_created` samples."""
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if "_created{" not in line and "_created " not in line]


def created(registry: CollectorRegistry) -> set[tuple[Any, ...]]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, *sorted(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.endswith("_created")
    }


def test_a_loop_counter_is_exposed_as_a_counter_is() -> None:
    ours, theirs = new_registry(), new_registry()
    loop = LoopCounter("things", "Things by kind.", ["kind", "outcome"], ours)
    counter = Counter("things", "Things by kind.", ["kind", "outcome"], registry=theirs)
    for labels in [("a", "ok"), ("a", "ok"), ("b", "error"), ("a", "error"), ("a", "ok")]:
        loop.inc(labels)
        counter.labels(*labels).inc()
    assert text_without_created(ours) == text_without_created(theirs)
    assert created(ours) == created(theirs)
    assert loop.value(("a", "ok")) == 3
    assert loop.value(("c", "ok")) == 0


def test_known_series_are_exposed_at_zero_before_their_first_increment() -> None:
    ours, theirs = new_registry(), new_registry()
    loop = LoopCounter("things", "Things.", ["outcome"], ours, known=[("ok",), ("error",)])
    counter = Counter("things", "Things.", ["outcome"], registry=theirs)
    counter.labels("ok")
    counter.labels("error")
    assert text_without_created(ours) == text_without_created(theirs)
    loop.inc(("ok",))
    counter.labels("ok").inc()
    assert text_without_created(ours) == text_without_created(theirs)
    assert created(ours) == created(theirs)


@pytest.mark.parametrize(
    "values",
    [
        [0.001, 0.005, 0.0051, 0.01, 0.5, 1.0, 1.5, 100.0],
        [0.0, 0.0, 0.0],
        [2.0],
        [0.01 * i for i in range(1, 300)],
    ],
)
def test_a_loop_histogram_is_exposed_as_a_histogram_is(values: list[float]) -> None:
    ours, theirs = new_registry(), new_registry()
    loop = LoopHistogram("took_seconds", "Time taken.", ["step"], BUCKETS, ours)
    histogram = Histogram("took_seconds", "Time taken.", ["step"], buckets=BUCKETS, registry=theirs)
    for i, value in enumerate(values):
        step = "even" if i % 2 == 0 else "odd"
        loop.observe((step,), value)
        histogram.labels(step).observe(value)
    # Each series adds its values in the same order on both sides: the sums are equal.
    assert text_without_created(ours) == text_without_created(theirs)
    assert created(ours) == created(theirs)
    assert loop.count(("even",)) == len(values[::2])
    assert loop.count(("none",)) == 0


def test_unlabelled_families_are_exposed_before_their_first_value() -> None:
    ours, theirs = new_registry(), new_registry()
    counter = LoopCounter("things", "Things.", [], ours)
    histogram = LoopHistogram("took_seconds", "Time taken.", [], BUCKETS, ours)
    Counter("things", "Things.", registry=theirs)
    Histogram("took_seconds", "Time taken.", buckets=BUCKETS, registry=theirs)
    assert text_without_created(ours) == text_without_created(theirs)
    assert created(ours) == created(theirs)
    counter.inc(())
    histogram.observe((), 0.5)
    assert counter.value(()) == 1
    assert histogram.count(()) == 1


def test_nan_is_summed_but_in_no_bucket_as_in_a_histogram() -> None:
    ours, theirs = new_registry(), new_registry()
    loop = LoopHistogram("took_seconds", "Time taken.", [], BUCKETS, ours)
    histogram = Histogram("took_seconds", "Time taken.", buckets=BUCKETS, registry=theirs)
    for value in (0.5, float("nan"), 2.0):
        loop.observe((), value)
        histogram.observe(value)
    assert text_without_created(ours) == text_without_created(theirs)


def test_a_value_on_a_bound_is_in_that_bound_s_bucket() -> None:
    registry = new_registry()
    loop = LoopHistogram("took_seconds", "Time taken.", [], BUCKETS, registry)
    loop.observe((), 0.01)
    samples = parsed(registry)
    assert samples[("took_seconds_bucket", ("le", "0.005"))] == 0
    assert samples[("took_seconds_bucket", ("le", "0.01"))] == 1
    assert samples[("took_seconds_bucket", ("le", "+Inf"))] == 1


def test_labels_that_do_not_fit_the_family_are_refused() -> None:
    registry = new_registry()
    counter = LoopCounter("things", "Things.", ["kind"], registry)
    histogram = LoopHistogram("took_seconds", "Time taken.", ["step"], BUCKETS, registry)
    with pytest.raises(ValueError, match="do not match"):
        counter.inc(("a", "b"))
    with pytest.raises(ValueError, match="do not match"):
        histogram.observe((), 1.0)
    with pytest.raises(ValueError, match="do not match"):
        counter.inc((1,))  # type: ignore[arg-type]
    assert parsed(registry) == {}


def test_a_family_name_is_registered_once() -> None:
    registry = new_registry()
    LoopCounter("things", "Things.", ["kind"], registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("things", "Things.", ["kind"], registry=registry)
