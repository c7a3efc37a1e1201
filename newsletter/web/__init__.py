"""The web app behind `newsletter serve` (see app.py): one module per area, the state they share in state.py."""

from newsletter.web.app import create_app, serve, server_options

__all__ = ["create_app", "serve", "server_options"]
