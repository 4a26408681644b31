"""What the broker acknowledged to the relay, to notice when it lost some of it.

`relay_acks` holds, per relay page and partition, the offsets the broker gave the page's
events and the position of the first of them: the map from a lost offset back to the store.
`relay_brokers` holds the cluster the relay last published to and how often it published
again because the broker had lost acknowledged events.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_acks",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("base_offset", sa.BigInteger, primary_key=True),
        sa.Column("end_offset", sa.BigInteger, nullable=False),
        sa.Column("last_batch_offset", sa.BigInteger, nullable=False),
        sa.Column("first_position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "relay_brokers",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("cluster_id", sa.Text, nullable=True),
        sa.Column("recoveries", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_recovery_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_recovery_from", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("relay_brokers")
    op.drop_table("relay_acks")
