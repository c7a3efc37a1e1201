"""The web app behind `newsletter serve`: feeds, the archive, subscribing, unsubscribing, preferences.

A Flask app served by waitress. Pages are rendered by newsletter.render (one Jinja2 Environment,
autoescape on); the archive shows a day with the email's own template. No page carries a script,
and the Content-Security-Policy header forbids them.

No cookies and no sessions. Who may change a subscription is decided by the signed token in the
URL alone (newsletter.tokens): it reaches only the subscriber's mailbox and cannot be guessed. A
POST that a browser marks as coming from another site (Sec-Fetch-Site, Origin) is refused on top,
so a leaked link cannot be used by a form elsewhere; RFC 8058 one-click unsubscribing (a bare POST
from the mail provider, without a cookie) is exempt and must just work. GET never changes anything:
confirming and unsubscribing show a page with a button.

Nothing a page answers depends on whether an address is known: every failing token gets the same
404 page, and POST /subscribe answers alike whatever the address's state, leaving the store work
and the email to the mailer thread, after the response, so that its timing does not tell either.
"""

from __future__ import annotations

import errno
import logging
import resource
import time
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter import render, tokens
from newsletter.config import Settings
from newsletter.dispatch.site_mail import Mailer
from newsletter.errors import NewsletterError
from newsletter.logs import configure_logging
from newsletter.shutdown import StopSignals
from newsletter.store import Store
from newsletter.web import archive, private, site, subscriber, subscribing
from newsletter.web.guards import CSP, local_location
from newsletter.web.state import Clock, SiteState
from newsletter.web.subscribing import remove_stale_pending

log = logging.getLogger("newsletter.web")  # the name `serve` has always logged under


MAX_BODY_BYTES = 64 * 1024
"""The largest request body: a form of a few fields. waitress answers 413 to larger ones before reading them."""
CONNECTION_LIMIT = 1000
"""Connections open at once. waitress's default (100) let 100 idle clients block every other one."""
IDLE_SECONDS = 30
"""A connection silent this long is closed (waitress's default, 120 s, kept a slow client's slot long)."""


def create_app(settings: Settings, *, store: Store | None = None, mailer: Mailer | None = None,
               clock: Clock = time.time) -> Flask:
    """The app for this config. ``clock`` (epoch seconds) dates and ages confirmation links and the
    archive pages kept in memory."""
    render.use_templates(settings.template_folder)
    app = Flask("newsletter.web")  # the name of its log lines
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    if settings.web.trusted_proxies:
        n = settings.web.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)  # type: ignore[method-assign]
    store = store if store is not None else Store.from_settings(settings)
    ctx = SiteState(settings, store, tokens.Tokens(tokens.load_secret(settings), clock=clock),
                    mailer if mailer is not None else Mailer(settings), clock)
    _register_hooks(app, ctx)
    for area in (site, archive, private, subscribing, subscriber):
        app.register_blueprint(area.blueprint(ctx))
    return app


def _register_hooks(app: Flask, ctx: SiteState) -> None:
    @app.before_request
    def refuse_nul() -> None:
        if "\x00" in request.path:  # no file or route has one; the OS would refuse it deep inside a view
            raise BadRequest("The address holds a NUL character.")

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # token URLs must not leak to other sites
        response.headers["X-Frame-Options"] = "DENY"
        location = response.headers.get("Location")
        if location:
            response.headers["Location"] = local_location(location)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = ctx.message(error.name, error.description or "", error.code or 500)
        for name, value in error.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response


def server_options(settings: Settings) -> dict[str, Any]:
    """waitress settings. waitress drops X-Forwarded-* headers by default; with [web] trusted_proxies
    set it passes them on, and ProxyFix (see create_app) believes only the last that many hops.

    The limits are this app's: bodies are small forms, pages are answered in milliseconds, so a
    connection that stays silent is closed soon, and many idle ones cannot take every slot."""
    return {"threads": settings.web.threads, "ident": "newsletter",
            "clear_untrusted_proxy_headers": settings.web.trusted_proxies == 0,
            "max_request_body_size": MAX_BODY_BYTES, "max_request_header_size": 64 * 1024,
            "connection_limit": _connection_limit(), "channel_timeout": IDLE_SECONDS, "cleanup_interval": 5,
            "asyncore_use_poll": True}  # select() cannot watch a socket numbered 1024 or above


def _connection_limit() -> int:
    """CONNECTION_LIMIT, or fewer when the process may not open that many files (each one is a socket)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return CONNECTION_LIMIT
    return max(16, min(CONNECTION_LIMIT, soft - 64))  # room for the store, the mailer and the log


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app under waitress until SIGINT or SIGTERM; then send the confirmation emails still
    queued (waiting at most Mailer.DRAIN_SECONDS) and close the store."""
    from waitress.server import create_server  # where types-waitress declares it

    configure_logging("INFO")  # one timestamped line per event, waitress's and Flask's too
    store = Store.from_settings(settings)
    try:
        mailer = Mailer(settings, housekeeping=remove_stale_pending(settings, store))
        try:
            try:
                server = create_server(create_app(settings, store=store, mailer=mailer), host=host, port=port,
                                       **server_options(settings))
            except OSError as exc:
                raise cannot_listen(exc, host, port) from exc
            # Only now: "serving" before a failed bind read as if the server had started.
            log.info("serving %s on http://%s:%d/ (Ctrl+C to stop)", settings.site.title, host, port)
            try:
                # A second signal while mailing acts as it did before: the handlers go back first.
                with StopSignals(raise_exit=True):
                    server.run()  # returns on SystemExit, once waitress has finished the requests in progress
            finally:
                server.close()
        finally:
            mailer.close()
    finally:
        store.close()


def cannot_listen(exc: OSError, host: str, port: int) -> NewsletterError:
    """What to do when the server cannot take its address. Exit 1, not 2: the config and the command
    are valid, and the same command works once the port is free (another server stopped)."""
    change = "pick another with --port or [web] port"
    if exc.errno == errno.EADDRINUSE:
        return NewsletterError(f"port {port} on {host} is in use; {change}",
                               f"another program (perhaps another `newsletter serve`) listens there: "
                               f"`ss -ltnp 'sport = :{port}'` shows which")
    if exc.errno == errno.EACCES:
        return NewsletterError(f"not allowed to listen on port {port} on {host}; {change}",
                               "ports below 1024 need privileges: serve on 8080 behind a reverse proxy")
    return NewsletterError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                           "check --host or [web] host: it must be an address of this machine")
