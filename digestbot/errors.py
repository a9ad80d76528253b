"""Errors: the one family every stage raises and only the CLI prints."""

from __future__ import annotations


class DigestbotError(Exception):
    """A failure a user can act on: what went wrong, and a hint on how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(DigestbotError):
    """Settings or the subscriptions file are wrong."""


class SubscriptionsError(ConfigError):
    """The subscriptions file failed to parse or validate; `problems` holds one line each."""

    def __init__(self, problems: list[str], hint: str) -> None:
        super().__init__("; ".join(problems), hint)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems) + f" ({self.hint})"


class SettingsError(ConfigError):
    """Settings are wrong; `problems` holds one line each, every one with its own fix."""

    def __init__(self, problems: list[str], hint: str) -> None:
        super().__init__("; ".join(problems), hint)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class StoreError(DigestbotError):
    """The database failed: locked, full, read-only, corrupt or unreachable."""


class ListingError(DigestbotError):
    """A paper listing could not be read or parsed."""


class SourceError(ListingError):
    """A listing could not be fetched: the URL, and the status or reason."""


class DeliveryError(DigestbotError):
    """A message could not be delivered; `permanent` says whether retrying can help."""

    def __init__(self, message: str, hint: str = "", *, permanent: bool = False) -> None:
        super().__init__(message, hint)
        self.permanent = permanent


class FeedbackFileError(ConfigError):
    """A votes file to import has bad rows; `problems` holds one `FILE:ROW: …` line each."""

    def __init__(self, problems: list[str], hint: str) -> None:
        super().__init__("; ".join(problems), hint)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join([*self.problems, self.hint])
