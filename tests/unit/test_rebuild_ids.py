"""A rebuild's workflow id names its projection, and the projection is read back from it."""

from __future__ import annotations

from workflows.followers import rebuild_workflow_id, rebuilt_projection


def test_the_projection_is_read_back_from_a_rebuilds_workflow_id() -> None:
    assert rebuilt_projection(rebuild_workflow_id("suspicious_activities", "r-1")) == (
        "suspicious_activities"
    )


def test_ids_of_other_workflows_name_no_rebuilt_projection() -> None:
    assert rebuilt_projection("projector/users") is None
    assert rebuilt_projection("rebuild-projection/users") is None
    assert rebuilt_projection("rebuild-projection//r-1") is None
