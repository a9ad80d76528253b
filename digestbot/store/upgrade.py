"""Store stage: bring a database made by an earlier version up to the current tables, on open."""

from __future__ import annotations

from sqlalchemy import Engine, inspect


def upgrade(engine: Engine) -> None:
    """Each step is a no-op on a database that has it already (create_all made the rest)."""
    columns = {t: {c["name"] for c in inspect(engine).get_columns(t)} for t in _TABLES}
    with engine.begin() as connection:
        if "message" in columns["deliveries"]:
            # Messages were kept in deliveries.message: move them to delivery_messages so
            # queued emails survive, then drop the column.
            connection.exec_driver_sql(
                "INSERT INTO delivery_messages (delivery_id, raw) SELECT id, message FROM"
                " deliveries WHERE id NOT IN (SELECT delivery_id FROM delivery_messages)"
            )
            connection.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN message")
        if "sent_mark" not in columns["papers"]:
            # 0 for the papers already stored: planning reads all the history while one of
            # them is a candidate, as it always did (db.PaperRow.sent_mark).
            connection.exec_driver_sql(
                "ALTER TABLE papers ADD COLUMN sent_mark INTEGER NOT NULL DEFAULT 0"
            )
        # Indexing sent_papers.subscriber_id alone is left to the unique pair (db.SentPaperRow).
        connection.exec_driver_sql("DROP INDEX IF EXISTS ix_sent_papers_subscriber_id")


_TABLES = ("deliveries", "papers")
