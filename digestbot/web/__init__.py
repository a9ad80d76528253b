"""Web stage: the small site readers' links open (unsubscribe, votes) and its health and metrics."""

from digestbot.web.app import create_app

__all__ = ["create_app"]
