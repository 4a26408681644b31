"""Complex event processing: the open window occurrences of every pattern and key.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pattern_occurrences",
        sa.Column("pattern", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "pattern_occurrences_expiry", "pattern_occurrences", ["pattern", "event_time"]
    )


def downgrade() -> None:
    op.drop_table("pattern_occurrences")
