"""Delivery stage: one `send()` for every transport (SMTP via aiosmtplib, or .eml files).

SMTP errors are classified for the outbox: a 5xx is permanent, a 4xx, a dropped connection
or a timeout before DATA is temporary, and a dropped connection or a timeout once DATA began
(waiting for its 354, writing the body, or waiting for the reply to it) is `unknown` (the
server may have stored it). An unreachable server, a refused login or a missing STARTTLS stop
the whole batch.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
import os
import re
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Protocol

import aiosmtplib

from digestbot.addresses import needs_smtputf8
from digestbot.errors import DeliveryError
from digestbot.settings import Settings

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


class TransportUnavailable(DeliveryError):
    """The transport cannot take mail now (SMTP server down, login refused, outbox folder not
    writable): nothing in the batch can go out."""


class DeliveryUnknown(DeliveryError):
    """The server may or may not have the message; resending could deliver it twice."""


@dataclass(frozen=True)
class Outbound:
    """A rendered message as stored, with the envelope it was created with (never parsed
    back from its headers)."""

    raw: bytes
    sender: str
    recipients: tuple[str, ...]

    def message(self) -> EmailMessage:
        """The whole message, parsed (for the file transport's HTML copy)."""
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class Transport(Protocol):
    async def send(self, outbound: Outbound) -> str: ...

    async def close(self) -> None: ...


async def send(outbound: Outbound, transport: Transport) -> str:
    """Deliver the message with `transport`; return where it went or raise DeliveryError."""
    return await transport.send(outbound)


def open_transport(settings: Settings) -> Transport:
    """The configured transport: one SMTP connection (reused for every message) or files."""
    if settings.effective_transport == "file":
        return FileTransport(settings.outbox_dir)
    return SmtpTransport(settings)


class FileTransport:
    """Writes each message as an .eml file plus an .html copy; the Message-ID names both."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, outbound: Outbound) -> str:
        return write_files(outbound, self.folder)

    async def close(self) -> None:
        return None


def write_files(outbound: Outbound, folder: Path) -> str:
    """Write the message as an .eml file, byte for byte what SMTP would get, plus an .html
    copy of its HTML part; the Message-ID names both."""
    message = outbound.message()
    token = _UNSAFE_FILENAME.sub("_", str(message["Message-ID"]).strip("<>").split("@")[0])
    recipient = _UNSAFE_FILENAME.sub("_", outbound.recipients[0] if outbound.recipients else "")
    eml, html_copy = folder / f"{recipient}-{token}.eml", folder / f"{recipient}-{token}.html"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        eml.write_bytes(outbound.raw)
        html = message.get_body(("html",))
        if html is not None:
            html_copy.write_text(str(html.get_content()), encoding="utf-8")
    except OSError as exc:
        raise TransportUnavailable(
            f"cannot write to the outbox folder {folder}: {exc.strerror}",
            "set DIGESTBOT_OUTBOX_DIR to a writable folder",
        ) from None
    return str(eml)


class SmtpTransport:
    """One SMTP connection, opened on first use and reused for every message after."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = settings.smtp_host or "localhost"
        self.port = settings.effective_smtp_port
        self.where = f"smtp://{self.host}:{self.port}"
        self._client: aiosmtplib.SMTP | None = None
        self._tls: ssl.SSLContext | None = None
        self._secrets = _auth_secrets(settings)

    async def __aenter__(self) -> SmtpTransport:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _tls_context(self) -> ssl.SSLContext | None:
        """TLS settings for `tls` and `starttls`, built once per transport (loading the CA
        bundle takes ~20 ms, on every reconnect otherwise); none for a plaintext relay."""
        if self.settings.smtp_tls == "none":
            return None
        if self._tls is None:
            self._tls = ssl.create_default_context()
            if not self.settings.smtp_verify:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        return self._tls

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        s = self.settings
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=s.smtp_timeout,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            tls_context=self._tls_context(),
        )
        try:
            await client.connect()
            if s.smtp_username and password is not None:
                await client.login(s.smtp_username, password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise TransportUnavailable(
                f"the SMTP server {self.host}:{self.port} refused the login: "
                f"{exc.code} {self._scrub(exc.message)}",
                "check DIGESTBOT_SMTP_USERNAME and DIGESTBOT_SMTP_PASSWORD",
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            client.close()
            raise self._unavailable(exc) from None
        self._client = client
        return client

    def _unavailable(self, exc: Exception) -> TransportUnavailable:
        untrusted = _certificate_problem(exc)
        if untrusted is not None:
            return TransportUnavailable(
                f"the SMTP server {self.host}:{self.port} has a certificate that does not "
                f"verify ({untrusted})",
                "set DIGESTBOT_SMTP_HOST to the name on the certificate, or trust its CA "
                "(SSL_CERT_FILE); DIGESTBOT_SMTP_VERIFY=false only for a test relay",
            )
        reason = self._scrub(_connect_reason(exc))
        if "STARTTLS" in reason.upper():
            return TransportUnavailable(
                f"the SMTP server {self.host}:{self.port} does not offer STARTTLS; refusing to "
                "send in clear text",
                "use DIGESTBOT_SMTP_TLS=tls, or =none only for a trusted local relay",
            )
        return TransportUnavailable(
            f"cannot connect to the SMTP server {self.host}:{self.port}: {reason}",
            "check DIGESTBOT_SMTP_HOST, DIGESTBOT_SMTP_PORT and DIGESTBOT_SMTP_TLS",
        )

    async def send(self, outbound: Outbound) -> str:
        client = await self._connect()
        utf8 = any(map(needs_smtputf8, (outbound.sender, *outbound.recipients)))
        options = await self._utf8_options(client, outbound) if utf8 else []
        encoding = "utf-8" if utf8 else "ascii"
        in_data = False
        try:
            await client.mail(outbound.sender, options=options, encoding=encoding)
            for recipient in outbound.recipients:
                await client.rcpt(recipient, encoding=encoding)
            in_data = True
            await client.data(outbound.raw)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise self._refused(exc) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            if in_data:
                # aiosmtplib's `data` does not say whether the body's final "." went out
                # before the connection failed, and a server that stored it may never have
                # replied: resending could deliver it twice, so it waits for a person.
                raise DeliveryUnknown(
                    f"{self.where}: {self._scrub(_reason(exc))} during DATA; the server may "
                    "have the message",
                    "check the recipient's mailbox, then `digestbot send-now --resend-unknown`",
                ) from None
            raise DeliveryError(
                f"{self.where}: {self._scrub(_reason(exc))}", "it will be retried"
            ) from None
        return self.where

    async def _utf8_options(self, client: aiosmtplib.SMTP, outbound: Outbound) -> list[str]:
        """["SMTPUTF8"] when the server offers it; otherwise this one email cannot be sent."""
        try:
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            reason = self._scrub(_reason(exc))
            raise DeliveryError(f"{self.where}: {reason}", "it will be retried") from None
        if client.supports_extension("smtputf8"):
            return ["SMTPUTF8"]
        address = next(a for a in (*outbound.recipients, outbound.sender) if needs_smtputf8(a))
        raise DeliveryError(
            f"{self.where} does not offer SMTPUTF8, which the address {address} needs",
            "send through a server that supports SMTPUTF8, or ask for an ASCII address",
            permanent=True,
        )

    def _scrub(self, text: str) -> str:
        """`text` (a server's words) without the password or its AUTH encodings, which a
        server that echoes the command it refuses would put in logs and error lines."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _refused(self, exc: aiosmtplib.SMTPResponseException) -> DeliveryError:
        return DeliveryError(
            f"{self.where} answered {exc.code} {self._scrub(' '.join(exc.message.split()))}",
            "the address or message was refused" if exc.code >= 500 else "it will be retried",
            permanent=exc.code >= 500,
        )

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """After a refusal the connection is still good: RSET it for the next message."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    async def close(self) -> None:
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self._client.close()
        self._client = None


class RateLimit:
    """At most `per_second` messages a second across every connection (0 = unlimited)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


def _auth_secrets(settings: Settings) -> list[str]:
    """The password as it could come back from a server: as it is, and base64-encoded alone
    (AUTH LOGIN) and with the user name (AUTH PLAIN); longest first."""
    if settings.smtp_password is None or not settings.smtp_password.get_secret_value():
        return []
    password = settings.smtp_password.get_secret_value().encode()
    user = (settings.smtp_username or "").encode()
    forms = {password, b"\0" + user + b"\0" + password, user + b"\0" + user + b"\0" + password}
    encoded = {base64.b64encode(form) for form in forms} | {password}
    return sorted((f.decode("utf-8", "replace") for f in encoded), key=len, reverse=True)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _connect_reason(exc: BaseException) -> str:
    """`connection refused`, `no route to host`: the system's words for a socket error under
    `exc` (aiosmtplib's own message repeats host and port), else `exc`'s message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            # Name lookup errors (socket.gaierror) have negative numbers and their own text.
            text = os.strerror(seen.errno) if seen.errno > 0 else seen.strerror
            if text:
                return text.lower()
        seen = seen.__cause__ or seen.__context__
    return _reason(exc)


def _certificate_problem(exc: BaseException) -> str | None:
    """What failed in verifying the server's certificate, if that is what `exc` is: raised
    as it is by STARTTLS, as the cause of aiosmtplib's connect error for implicit TLS."""
    for seen in (exc, exc.__cause__):
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or _reason(seen)
    return None
