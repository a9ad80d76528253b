"""Mailer stage: one `send()` for every transport (SMTP via aiosmtplib, or .eml files)."""

from __future__ import annotations

import re
import ssl
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from digestbot.errors import DeliveryError
from digestbot.settings import Settings

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


class SmtpUnavailable(DeliveryError):
    """The SMTP server could not be reached or refused our login: no message can go out."""


async def send(message: EmailMessage, settings: Settings) -> str:
    """Deliver `message` with the configured transport; return where it went."""
    if settings.effective_transport == "file":
        return write_files(message, settings.outbox_dir)
    return await _send_smtp(message, settings)


def write_files(message: EmailMessage, folder: Path) -> str:
    """Write `message` as an .eml file plus an .html copy; the Message-ID names both."""
    token = _UNSAFE_FILENAME.sub("_", str(message["Message-ID"]).strip("<>").split("@")[0])
    recipient = _UNSAFE_FILENAME.sub("_", str(message["To"].addresses[0].addr_spec))
    eml, html_copy = folder / f"{recipient}-{token}.eml", folder / f"{recipient}-{token}.html"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        eml.write_bytes(bytes(message))
        html = message.get_body(("html",))
        if html is not None:
            html_copy.write_text(str(html.get_content()), encoding="utf-8")
    except OSError as exc:
        raise SmtpUnavailable(
            f"cannot write to the outbox folder {folder}: {exc.strerror}",
            "set DIGESTBOT_OUTBOX_DIR to a writable folder",
        ) from None
    return str(eml)


async def _send_smtp(message: EmailMessage, settings: Settings) -> str:
    host, port = settings.smtp_host or "localhost", settings.effective_smtp_port
    where = f"smtp://{host}:{port}"
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message,
            hostname=host,
            port=port,
            username=settings.smtp_username,
            password=password,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            timeout=settings.smtp_timeout,
            tls_context=ssl.create_default_context(),
        )
    except aiosmtplib.SMTPConnectError as exc:
        raise SmtpUnavailable(
            f"cannot connect to the SMTP server {host}:{port}: {_reason(exc)}",
            "check DIGESTBOT_SMTP_HOST and DIGESTBOT_SMTP_PORT, and that the server is up",
        ) from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise SmtpUnavailable(
            f"the SMTP server {host}:{port} refused the login: {exc.code} {exc.message}",
            "check DIGESTBOT_SMTP_USERNAME and DIGESTBOT_SMTP_PASSWORD",
        ) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        replies = "; ".join(f"{e.code} {e.message}" for e in exc.recipients)
        raise DeliveryError(
            f"{where} refused the recipient: {replies}",
            "check the subscriber's address",
            permanent=all(e.code >= 500 for e in exc.recipients),
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryError(
            f"{where} answered {exc.code} {exc.message}",
            "the server may accept it later",
            permanent=exc.code >= 500,
        ) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{where}: {_reason(exc)}", "it will be retried") from None
    return where


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__
