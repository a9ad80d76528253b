"""Schedule stage: digest periods, their ledger, the `run` daemon and its PostgreSQL workers."""
