"""A registration's password hash waits in `held_credentials` until its command appends.

The API hashes the password and holds the hash here, keyed by the command id, before it starts
the command's workflow; the activity moves it into `user_credentials` in the transaction of the
UserRegistered event. So no hash travels in a workflow's input, where Temporal's history (and
its UI) would keep it.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_credentials",
        sa.Column("command_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column(
            "held_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("held_credentials")
