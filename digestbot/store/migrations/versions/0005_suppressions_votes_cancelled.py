"""Store stage, migration 0005: readers' unsubscribes (a suppression list) and votes on
papers, and the `cancelled` state of a queued email whose reader left.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATES = ("pending", "sending", "sent", "retry", "failed", "unknown")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("email", sa.String(), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("via", sa.String(), nullable=False),
    )
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscribers.id"), nullable=False),
        sa.Column("paper_id", sa.String(), sa.ForeignKey("papers.id"), nullable=False),
        sa.Column("vote", sa.String(), nullable=False),
        sa.Column("voted_at", sa.DateTime(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.UniqueConstraint("subscriber_id", "paper_id"),
        sa.CheckConstraint(_one_of("vote", ("up", "down")), name="ck_votes_vote"),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_status", type_="check")
        batch.create_check_constraint(
            "ck_deliveries_status", _one_of("status", (*STATES, "cancelled"))
        )


def downgrade() -> None:
    # Cancelled emails were never sent: as failed ones, nothing sends them again.
    op.execute("UPDATE deliveries SET status = 'failed' WHERE status = 'cancelled'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_status", type_="check")
        batch.create_check_constraint("ck_deliveries_status", _one_of("status", STATES))
    op.drop_table("votes")
    op.drop_table("suppressions")
