"""Every read model sagaline keeps, by name."""

from __future__ import annotations

from projections.accounts import AccountsProjection
from projections.projector import Projection
from projections.suspicious import SuspiciousActivityProjection
from projections.transfers import TransfersProjection
from projections.users import UsersProjection


def all_projections() -> list[Projection]:
    """Every projection the followers keep up to date."""
    return [
        UsersProjection(),
        AccountsProjection(),
        TransfersProjection(),
        SuspiciousActivityProjection(),
    ]


def projection_names() -> list[str]:
    """The names of every projection."""
    return [p.name for p in all_projections()]


def find_projection(name: str) -> Projection | None:
    """The projection with this name, if there is one."""
    return next((p for p in all_projections() if p.name == name), None)
