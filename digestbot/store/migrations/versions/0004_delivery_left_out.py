"""Store stage, migration 0004: each digest records the matching papers it had no room for,
so its subscriber's next digest can carry them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Digests queued before this revision left nothing on record: none is carried.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("left_out", JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("left_out")
