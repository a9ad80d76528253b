"""Store stage, migration 0006: the arXiv lookups of title-only papers, and the files that
folder sources ingested.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrichment",
        sa.Column("paper_id", sa.String(), sa.ForeignKey("papers.id"), primary_key=True),
        sa.Column("tried_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("arxiv_id", sa.String(), nullable=True),
        sa.Column("detail", sa.String(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('adopted', 'none', 'elsewhere')", name="ck_enrichment_outcome"
        ),
    )
    op.create_table(
        "folder_files",
        sa.Column("path", sa.String(), primary_key=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("folder_files")
    op.drop_table("enrichment")
