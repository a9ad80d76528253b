"""Settings: every knob, read once from the environment and `.env` by the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from digestbot.ingest.fetch import Endpoints
from digestbot.ingest.http import HttpPolicy

Transport = Literal["smtp", "file"]
TlsMode = Literal["starttls", "tls", "none"]
LogLevel = Literal["debug", "info", "warning", "error"]

_DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
# Hosts a plain-http public URL may name: a reader's link to them never leaves the machine.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Words of the values people leave in a secret meaning "fill me in": never in a key. Six
# letters or more, so a random key holds one by chance about once in a billion.
PLACEHOLDER_WORDS = ("change", "secret", "placeholder", "example", "random")


def _random_enough(key: str) -> bool:
    """Whether `key` could be a random string: 16 characters or more, no spaces, at least
    8 different ones, and none of the words of a placeholder (`change-me-…`, `your-key`)."""
    lowered = key.lower()
    return (
        len(key) >= 16
        and not any(ch.isspace() for ch in key)
        and len(set(key)) >= 8
        and not any(word in lowered for word in PLACEHOLDER_WORDS)
    )


class Settings(BaseSettings):
    """digestbot's configuration; each field is the env var DIGESTBOT_<NAME>."""

    model_config = SettingsConfigDict(
        env_prefix="DIGESTBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        "sqlite:///digestbot.db", description="SQLAlchemy URL of the database."
    )
    db_busy_timeout: float = Field(
        30.0, gt=0, description="Seconds a SQLite write waits for another process's write."
    )
    subscriptions: Path = Field(
        Path("subscriptions.yaml"), description="Path of the subscriptions YAML file."
    )
    from_address: str = Field(
        "digestbot@example.org", description="Sender address; its domain names Message-IDs."
    )
    from_name: str = Field("digestbot", description="Display name of the sender.")
    contact: str | None = Field(
        None,
        description="Who readers write to about their subscription, shown in every email's "
        "footer: a name and address or a URL; default the sender address.",
    )
    transport: Transport | None = Field(
        None, description="`smtp` or `file`; default `smtp` when SMTP_HOST is set, else `file`."
    )
    outbox_dir: Path = Field(Path("outbox"), description="Where the file transport writes .eml.")
    smtp_host: str | None = Field(None, description="SMTP server host name.")
    smtp_port: int | None = Field(
        None, description="SMTP port; default 587 (starttls), 465 (tls) or 25 (none)."
    )
    smtp_username: str | None = Field(None, description="SMTP login name, if the server needs one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (never logged).")
    smtp_tls: TlsMode = Field("starttls", description="`starttls`, `tls` or `none`.")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds to wait on the SMTP server.")
    smtp_verify: bool = Field(
        True, description="Verify the server's TLS certificate; turn off only for a test relay."
    )
    smtp_connections: int = Field(
        2, ge=1, le=64, description="SMTP connections used at once, each reused for many emails."
    )
    smtp_rate: float = Field(
        0.0, ge=0, description="Most emails per second across all connections; 0 = no limit."
    )
    max_attempts: int = Field(
        5, ge=1, description="Attempts per email before a temporary failure becomes `failed`."
    )
    retry_backoff: float = Field(
        60.0, ge=0, description="Seconds before the first retry; doubles each time, with jitter."
    )
    sending_lease: float = Field(
        900.0, gt=0, description="Seconds after which a row still `sending` is taken as crashed."
    )
    keep_messages_days: float = Field(
        14.0,
        ge=0,
        description="Days a sent or failed email's message is kept; 0 drops it after its batch.",
    )
    render_processes: int = Field(
        2,
        ge=0,
        description="Processes rendering a big batch beside the senders; 0 renders in-process.",
    )
    first_digest_hours: float = Field(
        24.0, gt=0, description="A first digest covers papers first seen this many hours back."
    )
    carry_over_days: float = Field(
        7.0,
        ge=0,
        description="Papers a digest left out (over max_papers) come in the next digests while"
        " first seen this many days back; 0 drops them.",
    )
    admin_email: str | None = Field(
        None, description="Operator address told when a source or delivery keeps failing."
    )
    admin_alert_after: int = Field(
        3, ge=1, description="Consecutive failed runs of a source or delivery before telling them."
    )
    alert_daily_cap: int = Field(
        5, ge=0, description="Most alert emails per subscriber per local day; the rest wait."
    )
    tick_seconds: float = Field(
        30.0, gt=0, description="How often `run` checks for due digests, retries and edits."
    )
    slice_size: int = Field(
        500,
        ge=1,
        description="Subscriber ids per slice of shared work (PostgreSQL workers): one "
        "transaction each.",
    )
    worker_lease: float = Field(
        300.0,
        gt=0,
        description="Seconds a worker holds a slice before another may take it over.",
    )
    worker_poll: float = Field(
        2.0, gt=0, description="Seconds an idle worker waits before looking for work again."
    )
    log_level: LogLevel = Field(
        "info",
        description="How much `run` logs: `debug` (adds each HTTP request), `info`, `warning` "
        "or `error`.",
    )
    templates_dir: Path | None = Field(
        None, description="Folder of templates that override the bundled ones."
    )
    public_url: str | None = Field(
        None,
        description="Base URL of `digestbot serve` as readers reach it (https://, or http:// on"
        " localhost); readers' unsubscribe and vote links point there.",
    )
    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Key that signs every reader link; required with DIGESTBOT_PUBLIC_URL"
        " (a long random string, never logged).",
    )
    hf_base_url: str = Field(
        "https://huggingface.co", description="Base URL of the Hugging Face Daily Papers API."
    )
    arxiv_rss_base_url: str = Field(
        "https://rss.arxiv.org", description="Base URL of arXiv's RSS feeds."
    )
    arxiv_api_base_url: str = Field(
        "https://export.arxiv.org", description="Base URL of the arXiv API (`/api/query`)."
    )
    arxiv_api_delay: float = Field(
        3.0, ge=0, description="Seconds between arXiv API requests (pages, lookups), as arXiv asks."
    )
    enrich: bool = Field(
        True,
        description="Look papers known only by title (saved pages, feeds) up on the arXiv API"
        " after each ingest, for their id, authors, categories and links.",
    )
    learn_min_votes: int = Field(
        5,
        ge=1,
        description="Votes of each kind (more like this, not relevant) a reader needs before"
        " their votes re-rank their digest and `recommend:` adds papers.",
    )
    embedding_model: str | None = Field(
        None,
        description="A model2vec model (a local folder, or a name model2vec downloads on first"
        " use) whose embeddings `like:` rules compare papers by instead of TF-IDF; needs"
        " `pip install 'digestbot[embeddings]'`. Each paper's vector is computed once and stored.",
    )
    like_refit_share: float = Field(
        0.1,
        gt=0,
        description="The TF-IDF model `like:` rules compare papers with is fitted on the stored"
        " papers, and fitted again once they have grown by this share.",
    )
    enrich_retry_days: int = Field(
        7, ge=1, description="Days before a lookup that found nothing on arXiv is tried again."
    )
    http_timeout: float = Field(
        20.0,
        gt=0,
        description="Seconds a listing server has for each whole answer, first to last byte.",
    )
    http_retries: int = Field(
        3, ge=0, description="Retries after a 429, a 5xx or a network failure."
    )
    http_backoff: float = Field(
        2.0, ge=0, description="First retry delay in seconds; it doubles each retry."
    )
    http_max_wait: float = Field(
        120.0, ge=0, description="Longest wait honoured from a Retry-After header."
    )
    max_document_mb: float = Field(
        50.0, gt=0, description="Largest listing document read, in MB after decompression."
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        local = parts.hostname in LOCAL_HOSTS
        if not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme == "http" and local)
        ):
            raise ValueError("must be an https:// URL (http:// only for localhost or 127.0.0.1)")
        if parts.query or parts.fragment:
            raise ValueError("must be a base URL, without ?query or #fragment")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _a_public_url_needs_a_real_key(self) -> Settings:
        key = self.secret_key.get_secret_value().strip()
        if self.public_url and not _random_enough(key):
            raise ValueError(
                "DIGESTBOT_PUBLIC_URL is set but DIGESTBOT_SECRET_KEY is empty, a placeholder or"
                " shorter than 16 characters (or not random: spaces, few different characters,"
                " words like `change` or `secret`): anyone could forge readers' links (set it to a"
                ' random value such as the output of `python3 -c "import secrets;'
                ' print(secrets.token_urlsafe(32))"`)'
            )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("contact")
    @classmethod
    def _check_contact(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if any(ch in value for ch in "\r\n\v\f\x85\u2028\u2029"):
            raise ValueError("must be one line (a name and address, or a URL)")
        if not value.isprintable():
            raise ValueError("must hold no control or invisible characters")
        if len(value) > 200:
            raise ValueError("must be at most 200 characters")
        return value.strip()

    @field_validator("from_address", "admin_email")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        from digestbot.addresses import normalise_address

        return None if value is None else normalise_address(value)

    @property
    def http_policy(self) -> HttpPolicy:
        """Timeouts and retries for fetching listings."""
        return HttpPolicy(
            timeout=self.http_timeout,
            retries=self.http_retries,
            backoff=self.http_backoff,
            max_wait=self.http_max_wait,
            max_bytes=int(self.max_document_mb * 2**20),
        )

    @property
    def endpoints(self) -> Endpoints:
        """Base URLs of the listing services."""
        return Endpoints(
            hf=self.hf_base_url,
            arxiv_rss=self.arxiv_rss_base_url,
            arxiv_api=self.arxiv_api_base_url,
        )

    @property
    def effective_transport(self) -> Transport:
        """The transport in force: explicit setting, else SMTP only when a host is set."""
        if self.transport is not None:
            return self.transport
        return "smtp" if self.smtp_host else "file"

    @property
    def effective_smtp_port(self) -> int:
        """The SMTP port in force, defaulting by TLS mode."""
        return self.smtp_port if self.smtp_port is not None else _DEFAULT_PORTS[self.smtp_tls]

    @property
    def reader_contact(self) -> str:
        """Whom an email tells its reader to write to: the contact, else the sender."""
        return self.contact or self.from_address

    @property
    def from_domain(self) -> str:
        """Domain of the sender address, used for Message-IDs."""
        return self.from_address.rsplit("@", 1)[1]


class _Given(Settings):
    """Settings made of the values given and the defaults, nothing else."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def given_settings(**values: Any) -> Settings:
    """Settings from `values` and the defaults only: no environment variable and no `.env` is
    read, so whatever is set for a real setup cannot leak in (the demo uses this)."""
    return _Given(**values)
