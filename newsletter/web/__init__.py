"""The web app behind `newsletter serve` (see app.py)."""

from newsletter.web.app import ARCHIVE_RECHECK_SECONDS, Mailer, create_app, serve, server_options

__all__ = ["ARCHIVE_RECHECK_SECONDS", "Mailer", "create_app", "serve", "server_options"]
