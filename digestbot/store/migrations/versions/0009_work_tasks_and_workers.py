"""Store stage, migration 0009: the shared work of many workers (slices of a round) and the
workers themselves.

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
        "work_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("round", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("first_id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("worker", sa.String(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("emails", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("waited", sa.Float(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("kind", "round", "first_id"),
        sa.CheckConstraint("kind IN ('digest', 'alert')", name="ck_work_tasks_kind"),
        sa.CheckConstraint(
            "state IN ('waiting', 'working', 'done', 'failed')", name="ck_work_tasks_state"
        ),
    )
    op.create_index("ix_work_tasks_state", "work_tasks", ["state"])
    op.create_table(
        "workers",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("slices", sa.Integer(), nullable=False),
        sa.Column("emails", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("ix_work_tasks_state", table_name="work_tasks")
    op.drop_table("work_tasks")
