"""Tests for the transports behind mailer.send(): files and real SMTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import email
import ssl
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from conftest import SmtpServer, free_port, smtp_at

from digestbot.delivery.transport import Outbound, TransportUnavailable, open_transport
from digestbot.delivery.transport import send as send_with
from digestbot.errors import DeliveryError
from digestbot.settings import Settings


async def send(message: EmailMessage | bytes, settings: Settings) -> str:
    """Send one message (or its bytes) with the transport `settings` configure, then close it."""
    raw = message if isinstance(message, bytes) else message.as_bytes(policy=policy.SMTP)
    # The envelope is the message's own From and To here; digestbot stores it with each row.
    headers = email.message_from_bytes(raw, policy=policy.default)
    envelope = (headers["From"].addresses[0].addr_spec, (headers["To"].addresses[0].addr_spec,))
    transport = open_transport(settings)
    try:
        return await send_with(Outbound(raw, *envelope), transport)
    finally:
        await transport.close()


def a_message(to: str = "alice@example.org") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "digestbot@example.org"
    msg["To"] = to
    msg["Subject"] = "Hello"
    msg["Message-ID"] = "<digest.abc123@example.org>"
    msg.set_content("plain")
    msg.add_alternative("<p>html</p>", subtype="html")
    return msg


async def test_the_file_transport_writes_an_eml_and_an_html_copy(settings: Settings) -> None:
    """One .eml holding the exact bytes SMTP would get, plus the HTML part on its own."""
    message = a_message()
    wire = message.as_bytes(policy=policy.SMTP)
    where = await send(message, settings)
    eml = Path(where)
    assert eml.parent == settings.outbox_dir
    assert eml.read_bytes() == wire
    assert eml.with_suffix(".html").read_text() == "<p>html</p>\n"


async def test_smtp_delivers_to_the_server(
    smtp_settings: Settings, smtp_server: SmtpServer
) -> None:
    """The loopback server receives the message for the right recipient."""
    where = await send(a_message(), smtp_settings)
    assert where == f"smtp://127.0.0.1:{smtp_server.port}"
    (envelope,) = smtp_server.inbox.envelopes
    assert envelope.rcpt_tos == ["alice@example.org"]
    assert smtp_server.inbox.messages[0]["Subject"] == "Hello"


@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
async def test_the_server_gets_the_message_as_it_was_dots_and_all(
    smtp_settings: Settings, smtp_server: SmtpServer, linesep: str
) -> None:
    """Lines that start with a dot arrive intact, whichever line endings the stored bytes have."""
    message = a_message()
    message.get_body(("plain",)).set_content(".hidden\n..\n.\nend\n")  # type: ignore[union-attr]
    raw = message.as_bytes(policy=policy.SMTP.clone(linesep=linesep))
    await send(raw, smtp_settings)
    (envelope,) = smtp_server.inbox.envelopes
    assert envelope.original_content == raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


async def test_a_refused_connection_is_smtp_unavailable(settings: Settings) -> None:
    """Nobody listening is an TransportUnavailable naming host and port."""
    port = free_port()
    closed = smtp_at(settings, port)
    with pytest.raises(
        TransportUnavailable, match=f"cannot connect to the SMTP server 127.0.0.1:{port}"
    ):
        await send(a_message(), closed)


class _RejectNobody:
    """Accepts everyone except nobody@…, whom it refuses with 550."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_a_recipient_refused_with_5xx_is_permanent(
    settings: Settings, smtp_factory: Any
) -> None:
    """A 550 for the recipient is a permanent DeliveryError carrying the server's reply."""
    target = smtp_at(settings, smtp_factory(_RejectNobody()))
    with pytest.raises(DeliveryError, match=r"550 5\.1\.1 No such user") as caught:
        await send(a_message(to="nobody@example.org"), target)
    assert caught.value.permanent


class _RejectEveryone:
    """An authenticator that refuses every login."""

    def __call__(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=False, handled=False)


async def test_the_password_never_shows_in_logs_reprs_or_errors(
    settings: Settings, smtp_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """With debug logging on and a refused login, the password appears nowhere."""
    import logging

    from pydantic import SecretStr

    secret = "hunter2-very-secret"
    port = smtp_factory(_Recorder(), authenticator=_RejectEveryone(), auth_require_tls=False)
    caplog.set_level(logging.DEBUG)
    target = smtp_at(settings, port, smtp_username="bot", smtp_password=SecretStr(secret))
    with pytest.raises(TransportUnavailable, match="refused the login") as caught:
        await send(a_message(), target)
    assert secret not in str(caught.value)
    assert secret not in repr(target) and secret not in str(target.model_dump())
    assert secret not in caplog.text
    assert caplog.records, "debug logging was on and something was logged"


def echoes_auth(method: str) -> Any:
    """A raw SMTP server offering one AUTH method that refuses the login by echoing what the
    client sent (the base64 credentials) in its reply, as some misconfigured servers do."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 echo ESMTP\r\n")
        sent: list[bytes] = []
        while line := await reader.readline():
            sent.append(line.strip())
            if line.upper().startswith(b"EHLO"):
                writer.write(f"250-echo\r\n250 AUTH {method}\r\n".encode())
            elif line.upper().startswith(b"AUTH LOGIN") and len(sent) < 4:
                writer.write(b"334 VXNlcm5hbWU6\r\n")  # "Username:", then the password
            elif line.upper().startswith(b"AUTH") or len(sent) >= 3:
                writer.write(b"535 5.7.8 refused: " + b" ".join(sent[1:]) + b"\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"334 UGFzc3dvcmQ6\r\n")
            await writer.drain()
        writer.close()

    return handle


@pytest.mark.parametrize("method", ["PLAIN", "LOGIN"])
async def test_a_server_echoing_the_auth_command_never_shows_the_password(
    settings: Settings, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The password, and its base64 forms in AUTH, are masked in the error and the logs."""
    import logging

    from pydantic import SecretStr

    secret = "hunter2-very-secret"
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    forms.add(base64.b64encode(b"\0bot\0" + secret.encode()).decode())
    server = await asyncio.start_server(echoes_auth(method), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caplog.set_level(logging.DEBUG)
    target = smtp_at(settings, port, smtp_username="bot", smtp_password=SecretStr(secret))
    try:
        with pytest.raises(TransportUnavailable, match="refused the login") as caught:
            await send(a_message(), target)
    finally:
        server.close()
    assert "refused: " in str(caught.value)
    assert not [f for f in forms if f in str(caught.value) or f in caplog.text]


class _Recorder:
    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return "250 OK"


class _Sessions:
    """Accepts every message and notes whether its session was encrypted."""

    def __init__(self) -> None:
        self.encrypted: list[bool] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 OK"


@pytest.fixture
def local_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    """A throwaway certificate authority this process trusts (SSL_CERT_FILE names it)."""
    ca = trustme.CA()
    bundle = tmp_path / "trusted.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return ca


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server-side TLS context with a certificate `ca` issued for `names`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_it_sends_encrypted_to_a_server_it_trusts(
    settings: Settings, smtp_factory: Any, local_ca: trustme.CA, mode: str
) -> None:
    """STARTTLS and implicit TLS both deliver, encrypted, when the certificate checks out."""
    handler = _Sessions()
    context = server_context(local_ca, "127.0.0.1")
    tls = {"tls_context": context, "require_starttls": True}
    port = smtp_factory(handler, **(tls if mode == "starttls" else {"ssl_context": context}))
    await send(a_message(), smtp_at(settings, port, smtp_tls=mode))
    assert handler.encrypted == [True]


@pytest.mark.parametrize("mode", ["starttls", "tls"])
@pytest.mark.parametrize("issued_by", ["another CA", "the trusted CA for another name"])
async def test_it_refuses_a_certificate_it_cannot_verify(
    settings: Settings, smtp_factory: Any, local_ca: trustme.CA, issued_by: str, mode: str
) -> None:
    """A certificate from an unknown CA, or for another host, stops the send: nothing goes out."""
    handler = _Sessions()
    if issued_by == "another CA":
        context = server_context(trustme.CA(), "127.0.0.1")
    else:
        context = server_context(local_ca, "mail.example.org")
    tls = {"tls_context": context, "require_starttls": True}
    port = smtp_factory(handler, **(tls if mode == "starttls" else {"ssl_context": context}))
    with pytest.raises(TransportUnavailable, match="certificate that does not verify") as caught:
        await send(a_message(), smtp_at(settings, port, smtp_tls=mode))
    assert "DIGESTBOT_SMTP_VERIFY=false" in caught.value.hint
    assert handler.encrypted == []


async def test_verification_can_be_turned_off_for_a_test_relay(
    settings: Settings, smtp_factory: Any, local_ca: trustme.CA
) -> None:
    """DIGESTBOT_SMTP_VERIFY=false sends to a relay whose certificate nobody vouches for."""
    handler = _Sessions()
    port = smtp_factory(handler, ssl_context=server_context(trustme.CA(), "relay.invalid"))
    await send(a_message(), smtp_at(settings, port, smtp_tls="tls", smtp_verify=False))
    assert handler.encrypted == [True]
