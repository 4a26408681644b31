"""Password hashes move out of the event log into `user_credentials`, on the write side only.

Hashes are copied from the stored UserRegistered events (the truth), then from the users read
model for any user whose event is not there. The stored events are then rewritten without the
hash, as schema version 2 (exactly version 1 less `password_hash`): rewriting history is
normally off limits, but a secret must not stay in a log every reader of `events`, the relay
and a rebuild sees. User snapshots of version 1 held the hash too and are dropped (a snapshot
is only a cache). Messages the relay already published keep their hash: Kafka's retention,
not this migration, removes them.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_credentials",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.execute(
        "INSERT INTO user_credentials (user_id, password_hash)"
        " SELECT stream_id, data->>'password_hash' FROM events"
        " WHERE type = 'UserRegistered' AND data ? 'password_hash'"
        " ON CONFLICT (user_id) DO NOTHING"
    )
    op.execute(
        "INSERT INTO user_credentials (user_id, password_hash)"
        " SELECT id, password_hash FROM users WHERE password_hash <> ''"
        " ON CONFLICT (user_id) DO NOTHING"
    )
    op.execute(
        "UPDATE events SET data = data - 'password_hash', schema_version = 2"
        " WHERE type = 'UserRegistered' AND data ? 'password_hash'"
    )
    op.execute("DELETE FROM snapshots WHERE aggregate_type = 'User' AND schema_version = 1")
    op.drop_column("users", "password_hash")


def downgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.Text, nullable=False, server_default=""))
    op.execute(
        "UPDATE users SET password_hash = c.password_hash"
        " FROM user_credentials AS c WHERE c.user_id = users.id"
    )
    op.alter_column("users", "password_hash", server_default=None)
    op.execute(
        "UPDATE events SET schema_version = 1,"
        " data = data || jsonb_build_object('password_hash', c.password_hash)"
        " FROM user_credentials AS c"
        " WHERE events.type = 'UserRegistered' AND events.stream_id = c.user_id"
    )
    op.execute("DELETE FROM snapshots WHERE aggregate_type = 'User' AND schema_version = 2")
    op.drop_table("user_credentials")
