"""Transfers read model keeps a rejected transfer's reason details (a refusal's facts).

The API shows a refusal's reason to each reader from these facts (the account it is about,
that account's figures), hiding the figures of an account that is not the reader's. No event
before this one kept details, so rows already there have none.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transfers", sa.Column("reason_details", JSONB))


def downgrade() -> None:
    op.drop_column("transfers", "reason_details")
