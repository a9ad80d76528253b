"""Delivery stage: the one line saying where emails go (an SMTP server, or a folder)."""

from __future__ import annotations

from digestbot.settings import Settings

_TLS_LABELS = {"starttls": "STARTTLS", "tls": "TLS", "none": "no TLS"}


def where_emails_go(settings: Settings) -> str:
    """One line saying where this run's emails go."""
    if settings.effective_transport == "smtp":
        host = settings.smtp_host or "localhost"
        tls = _TLS_LABELS[settings.smtp_tls]
        return f"sending through {host}:{settings.effective_smtp_port} ({tls})"
    folder = settings.outbox_dir
    shown = str(folder) if folder.is_absolute() else f"./{folder}"
    why = "no DIGESTBOT_SMTP_HOST set" if not settings.smtp_host else "DIGESTBOT_TRANSPORT=file"
    return f"writing emails to {shown} ({why})"
