"""Store stage, migration 0003: each delivery keeps its envelope (sender and recipient) in
columns, so a stored message is never parsed back to find where it goes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import email.policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("sender", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("recipient", sa.String(), nullable=False, server_default=""))
    connection = op.get_bind()
    # The recipient is the subscriber's address; releases before this one could only send to
    # ASCII addresses, so it is already the form that goes on the wire.
    connection.execute(
        sa.text(
            "UPDATE deliveries SET recipient = "
            "(SELECT email FROM subscribers WHERE subscribers.id = deliveries.subscriber_id)"
        )
    )
    # The sender was the From address of the settings of the day: read it from each stored
    # message's unfolded From header (rows whose message was dropped are never sent again).
    stored = connection.execute(sa.text("SELECT delivery_id, raw FROM delivery_messages"))
    for delivery_id, raw in stored:
        sender = _from_address(bytes(raw))
        connection.execute(
            sa.text("UPDATE deliveries SET sender = :sender WHERE id = :id"),
            {"sender": sender, "id": delivery_id},
        )


def _from_address(raw: bytes) -> str:
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[: end + 2]
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
    found = getaddresses([str(headers.get("From", ""))])
    return found[0][1] if found else ""


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("recipient")
        batch.drop_column("sender")
