"""Errors that reach the operator. Each one says what went wrong and what to check.

The CLI turns them into ``click.ClickException`` (or a usage error) at the edge; the rest of the
code raises them and never prints.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Base class: ``message`` says what happened, ``hint`` what the operator should check."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

    def one_line(self) -> str:
        """Message and hint on one line, for a log line or a summary."""
        return f"{self.message}; hint: {self.hint}" if self.hint else self.message


class ConfigError(NewsletterError):
    """The config file is missing, malformed, or has a wrong key or value. Exit 2."""

    exit_code = 2


class UsageError(NewsletterError):
    """A command-line value the operator gave is invalid (a bad date, an unknown category). Exit 2."""

    exit_code = 2


class DigestError(NewsletterError):
    """A file could not be read as a digest at all."""

    def __init__(self, path: str, message: str, hint: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}", hint)
        self.path = path
        self.line = line


class StoreError(NewsletterError):
    """The database could not be opened or written."""


class DeliveryError(NewsletterError):
    """Sending stopped: the SMTP server or the credentials need the operator's attention."""


class InvalidSubscriberError(UsageError):
    """An address, name, keyword, category or status that cannot be stored. Exit 2."""


class SubscriberExistsError(NewsletterError):
    """An address that is already subscribed (compared case-insensitively)."""


class SubscriberNotFoundError(NewsletterError):
    """No subscriber has that address or id."""


class FeedError(NewsletterError):
    """Feed files could not be written to [feeds] dir."""
