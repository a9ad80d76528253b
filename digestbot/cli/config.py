"""CLI plumbing: the settings check (unknown names, SMTP without a host, placeholders) and the
line saying where emails go."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

# Re-exported: the line lives in delivery so that the daemon can log it too.
from digestbot.delivery.where import where_emails_go as where_emails_go
from digestbot.settings import Settings

PREFIX = "DIGESTBOT_"
ENV_FILE = Path(".env")

# Names people reach for that difflib alone would map elsewhere (SMTP_SERVER reads closest to
# SMTP_USERNAME, letter by letter).
_SYNONYMS = {
    "SERVER": "HOST",
    "HOSTNAME": "HOST",
    "USER": "USERNAME",
    "LOGIN": "USERNAME",
    "PASS": "PASSWORD",
    "SSL": "TLS",
    "SENDER": "FROM_ADDRESS",
    "FROM": "FROM_ADDRESS",
    "KEY": "SECRET",
    "DB": "DATABASE_URL",
}
_SMTP_WITHOUT_HOST = (
    "smtp_port",
    "smtp_username",
    "smtp_password",
    "smtp_tls",
    "smtp_timeout",
    "smtp_verify",
    "smtp_connections",
    "smtp_rate",
)
# RFC 2606 reserves these for documentation (the default and .env.example use them): mail
# from them is never a real sender. The `.example` top-level name is left out so that tests
# have a sender the address check accepts (it refuses `.test` and `.invalid`).
_PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")


@dataclass(frozen=True)
class Given:
    """One DIGESTBOT_ variable as set: its name, where (environment or `.env`) and value."""

    name: str
    where: str
    value: str

    @property
    def field(self) -> str:
        return self.name.upper().removeprefix(PREFIX).lower()


def given_names(environ: Mapping[str, str], env_file: Path = ENV_FILE) -> list[Given]:
    """Every DIGESTBOT_ variable set: the environment's, then `.env`'s."""
    found = [Given(n, "the environment", v) for n, v in environ.items()]
    if env_file.is_file():
        found += [Given(n, str(env_file), v or "") for n, v in dotenv_values(env_file).items()]
    return [g for g in found if g.name.upper().startswith(PREFIX)]


# Settings of earlier releases, and what took their place.
_REPLACED = {
    "UNSUBSCRIBE_URL": f"replaced by {PREFIX}PUBLIC_URL, the base URL of `digestbot serve` "
    "(set that instead; see docs/settings.md)",
    "UNSUBSCRIBE_SECRET": f"replaced by {PREFIX}SECRET_KEY (rename it: links in emails already "
    "sent stop working either way)",
}


def unknown_names(names: Iterable[Given]) -> list[str]:
    """One problem per DIGESTBOT_ name that is no setting, naming the closest real one."""
    known = [field.upper() for field in Settings.model_fields]
    problems = []
    for given in names:
        name, where = given.name, given.where
        suffix = name.upper().removeprefix(PREFIX)
        if suffix.lower() in Settings.model_fields:
            continue
        if suffix in _REPLACED:
            problems.append(f"{name} (in {where}) is {_REPLACED[suffix]}")
            continue
        words = "_".join(_SYNONYMS.get(word, word) for word in suffix.split("_"))
        close = difflib.get_close_matches(words, known, n=1, cutoff=0.6)
        hint = f"did you mean {PREFIX}{close[0]}?" if close else "see docs/settings.md"
        problems.append(f"{name} (in {where}) is not a digestbot setting ({hint})")
    return problems


def orphans(names: Iterable[Given]) -> list[str]:
    """SMTP settings given without the host they are for (read from the names, so that this
    is reported along with any value that does not validate)."""
    given = list(names)
    if any(g.field == "smtp_host" and g.value.strip() for g in given):
        return []
    fields = {g.field for g in given}
    lonely = [PREFIX + f.upper() for f in _SMTP_WITHOUT_HOST if f in fields]
    # The SMTP client would fall back to localhost: not what anyone who set it meant.
    if any(g.field == "transport" and g.value.strip().lower() == "smtp" for g in given):
        lonely.insert(0, f"{PREFIX}TRANSPORT=smtp")
    if not lonely:
        return []
    listed = ", ".join(lonely)
    return [
        f"{listed} set but {PREFIX}SMTP_HOST is not: no server to send through is named "
        f"(set {PREFIX}SMTP_HOST, or remove them to write emails to a folder)"
    ]


def placeholders(settings: Settings) -> list[str]:
    """Placeholder values that must not reach real readers over SMTP."""
    if settings.effective_transport != "smtp":
        return []
    problems = []
    domain = settings.from_domain.lower()
    if any(domain == d or domain.endswith("." + d) for d in _PLACEHOLDER_DOMAINS):
        problems.append(
            f"{PREFIX}FROM_ADDRESS is the placeholder {settings.from_address} "
            f"(set {PREFIX}FROM_ADDRESS to the address your digests come from)"
        )
    return problems


def nowhere_addresses(emails: Iterable[str]) -> list[str]:
    """Warnings for subscribers at the example domains (RFC 2606), such as the ones
    `digestbot init` writes: mail to them reaches no one."""
    return [
        f"{email} is at an example domain: mail to it reaches no one (put your readers in "
        "the subscriptions file)"
        for email in emails
        if any(
            email.lower().endswith(("@" + d, "." + d)) for d in (*_PLACEHOLDER_DOMAINS, "example")
        )
    ]
