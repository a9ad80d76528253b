"""Delivery stage: the outbox, its claims, the transports, and batches rendered as they send."""
