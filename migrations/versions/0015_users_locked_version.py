"""Users read model keeps the version of each user's last lock, so a lock revokes sessions.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("locked_version", sa.Integer, nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE users SET locked_version = locked.version FROM ("
        " SELECT stream_id, max(version) AS version FROM events"
        " WHERE type = 'UserLocked' GROUP BY stream_id"
        ") AS locked WHERE locked.stream_id = users.id"
    )


def downgrade() -> None:
    op.drop_column("users", "locked_version")
