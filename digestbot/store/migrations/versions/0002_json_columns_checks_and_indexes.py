"""Store stage, migration 0002: JSON columns, CHECK constraints on states, and the indexes the
scheduler's tick reads through (those nothing reads are dropped).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
JSON_COLUMNS = {
    "papers": ("authors", "categories", "links", "keywords", "sources"),
    "rules": ("body",),
    "deliveries": ("paper_ids",),
}
STATES = ("pending", "sending", "sent", "retry", "failed", "unknown")
KINDS = ("digest", "alert")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    for table, columns in JSON_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                # SQLite keeps the text as it is; PostgreSQL parses it into JSONB.
                batch.alter_column(
                    column,
                    existing_type=sa.String(),
                    type_=JSON,
                    existing_nullable=False,
                    postgresql_using=f"{column}::jsonb",
                )
    with op.batch_alter_table("papers") as batch:
        batch.drop_index("ix_papers_norm_title")  # titles are matched in memory
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_subscriber_id")  # UNIQUE(subscriber_id, …) serves
        batch.create_index(
            "ix_deliveries_subscriber_kind_created", ["subscriber_id", "kind", "created_at"]
        )
        batch.create_check_constraint("ck_deliveries_status", _one_of("status", STATES))
        batch.create_check_constraint("ck_deliveries_kind", _one_of("kind", KINDS))
        batch.create_check_constraint("ck_deliveries_attempts", "attempts >= 0")
    with op.batch_alter_table("digest_periods") as batch:
        batch.drop_index("ix_digest_periods_subscriber_id")  # UNIQUE(subscriber_id, …) serves
        batch.create_index("ix_digest_periods_period_key", ["period_key"])
        batch.create_index("ix_digest_periods_subscriber_decided", ["subscriber_id", "decided_at"])


def downgrade() -> None:
    with op.batch_alter_table("digest_periods") as batch:
        batch.drop_index("ix_digest_periods_subscriber_decided")
        batch.drop_index("ix_digest_periods_period_key")
        batch.create_index("ix_digest_periods_subscriber_id", ["subscriber_id"])
    with op.batch_alter_table("deliveries") as batch:
        for name in ("ck_deliveries_attempts", "ck_deliveries_kind", "ck_deliveries_status"):
            batch.drop_constraint(name, type_="check")
        batch.drop_index("ix_deliveries_subscriber_kind_created")
        batch.create_index("ix_deliveries_subscriber_id", ["subscriber_id"])
    with op.batch_alter_table("papers") as batch:
        batch.create_index("ix_papers_norm_title", ["norm_title"])
    for table, columns in JSON_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    existing_type=JSON,
                    type_=sa.String(),
                    existing_nullable=False,
                    postgresql_using=f"{column}::text",
                )
