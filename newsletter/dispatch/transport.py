"""Hand prepared messages to an SMTP server, one connection reused across messages.

The interface is deliberately small, like listmonk's messenger: ``send(sender, recipient, bytes)``
returns the server's final reply or raises, and ``close()``. What to do with a refusal is the
delivery loop's business (newsletter/delivery.py); this module only reports what the server said:

- ``SmtpReplyError``: the server answered, but not with success (carries code, enhanced status, stage);
- ``ConnectionLost``: the connection dropped or timed out before the whole message was sent, so the
  server discarded it;
- ``OutcomeUnknown``: the connection dropped or timed out after the whole message (and its final
  dot) was sent: the server may have kept it;
- ``ConnectError``: no connection could be opened (refused, TLS handshake, DNS);
- ``DeliveryError``: the login was refused or impossible, which only the operator can fix.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from newsletter.config import SmtpSettings
from newsletter.errors import ConfigError, DeliveryError

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code at the start of the text (e.g. ``5.1.1``), if the server gave one."""
        match = _ENHANCED.match(self.text)
        return match.group(0) if match and match.group(1) == str(self.code)[0] else None

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


SmtpStage = Literal["MAIL FROM", "RCPT TO", "DATA"]
"""The SMTP command a reply answered."""


class SmtpReplyError(Exception):
    def __init__(self, reply: Reply, stage: SmtpStage) -> None:
        super().__init__(f"{stage}: {reply}")
        self.reply = reply
        self.stage = stage
        """MAIL FROM, RCPT TO or DATA."""


class ConnectionLost(Exception):
    """The connection dropped mid-transaction, before the server had the whole message."""


class OutcomeUnknown(ConnectionLost):
    """No reply after the final dot: the server may or may not have taken the message."""


class ConnectError(Exception):
    """No connection to the server could be opened. ``server`` is HOST:PORT, ``reason`` what failed."""

    def __init__(self, message: str, server: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.server = server
        self.reason = reason or message


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message: bytes, meanwhile: Callable[[], None] | None = None,
             awaiting: Callable[[], None] | None = None) -> Reply: ...

    def close(self) -> None: ...


def smtp_password(settings: SmtpSettings) -> str | None:
    """The password from the environment variable the config names; None when no username is set."""
    if not settings.username:
        return None
    password = os.environ.get(settings.password_env)
    if not password:
        raise ConfigError(
            f"smtp.username is set but the environment variable {settings.password_env} is empty or unset",
            f"export {settings.password_env}=... before sending (the password is never read from the config file)",
        )
    return password


def dot_stuffed(message: bytes) -> bytes:
    """The content as DATA carries it (RFC 5321 4.5.2): a "." that starts a line is doubled, and it
    ends with CRLF. The same bytes as smtplib's ``data()``, whose regex took 0.4 ms of a 5 ms send
    (bench/send.py); ``bytes.replace`` takes a few microseconds."""
    stuffed = message.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def _decode(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


class SmtpTransport:
    """One SMTP connection, opened on first use, reused, and reopened after a drop. Not thread-safe:
    give each thread its own."""

    def __init__(self, settings: SmtpSettings, password: str | None = None) -> None:
        self.settings = settings
        self.password = password
        self._conn: smtplib.SMTP | None = None

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file or None)

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        server = f"{s.host}:{s.port}"
        where = f"{server} (security={s.security})"
        try:
            conn: smtplib.SMTP
            if s.security == "tls":
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise DeliveryError(f"{where}: the server does not offer STARTTLS",
                                        "use security = \"tls\" (port 465) or \"none\", or check smtp.port")
                conn.starttls(context=self._tls_context())
                conn.ehlo()
        except (smtplib.SMTPException, OSError) as exc:  # ssl.SSLError is an OSError
            raise ConnectError(f"cannot connect to {where}: {exc}", server, f"{exc} (security={s.security})") from exc
        if s.username:
            self._login(conn, server, where)
        return conn

    def _login(self, conn: smtplib.SMTP, server: str, where: str) -> None:
        try:
            conn.login(self.settings.username, self.password or "")
        except smtplib.SMTPNotSupportedError as exc:
            conn.close()
            raise DeliveryError(f"{where}: the server offers no login (AUTH) on this connection",
                                "most servers allow it only over TLS: set security to starttls or tls") from exc
        except smtplib.SMTPAuthenticationError as exc:
            conn.close()
            raise DeliveryError(
                f"{where}: login refused for {self.settings.username!r}: {exc.smtp_code} {_decode(exc.smtp_error)}",
                f"check smtp.username and the password in ${self.settings.password_env}",
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            conn.close()
            raise ConnectError(f"{where}: login failed: {exc}", server, f"login failed: {exc}") from exc

    def send(self, sender: str, recipient: str, message: bytes, meanwhile: Callable[[], None] | None = None,
             awaiting: Callable[[], None] | None = None) -> Reply:
        """Deliver ``message`` (final CRLF bytes) to one recipient; the server's 250 reply on success.

        ``meanwhile`` runs once, before any content goes out: on an open connection once MAIL FROM
        is sent and before its reply is read, so that local work overlaps the server's; otherwise
        first thing, as connecting may take long and leaves nothing to overlap. ``awaiting`` runs
        once the whole message is out, before its final reply is read (work that overlaps the
        server's answer); it must not raise, or the outcome of the message would go unread."""
        if self._conn is None:
            if meanwhile is not None:
                meanwhile()
                meanwhile = None
            self._conn = self._open()
        conn = self._conn
        self._start_mail(conn, sender, recipient, message)
        if meanwhile is not None:
            try:
                meanwhile()
            except BaseException:
                self.close()  # the reply to MAIL FROM is still unread: the connection is out of step
                raise
        self._send_envelope_and_content(conn, recipient, message)
        if awaiting is not None:
            awaiting()
        return self._final_reply(conn)

    def _start_mail(self, conn: smtplib.SMTP, sender: str, recipient: str, message: bytes) -> None:
        """Send MAIL FROM, with the options the message needs and the server offers; its reply is left unread."""
        options = []
        if not message.isascii() and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (sender + recipient).isascii() and conn.has_extn("smtputf8"):
            options.append("SMTPUTF8")
            conn.command_encoding = "utf-8"  # as smtplib's mail() does for this option
        try:
            conn.putcmd("mail", f"FROM:{smtplib.quoteaddr(sender)}{''.join(' ' + o for o in options)}")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise self._lost(exc) from exc

    def _send_envelope_and_content(self, conn: smtplib.SMTP, recipient: str, message: bytes) -> None:
        """Read MAIL FROM's reply, then send RCPT TO, DATA and the content; the final reply is left unread."""
        try:
            code, text = conn.getreply()
            if code != 250:
                self._refused(Reply(code, _decode(text)), "MAIL FROM")
            code, text = conn.rcpt(recipient)
            if code not in (250, 251):
                self._refused(Reply(code, _decode(text)), "RCPT TO")
            code, text = conn.docmd("DATA")
            if code != 354:  # DATA itself refused, before any content was sent
                self._refused(Reply(code, _decode(text)), "DATA")
            conn.send(dot_stuffed(message) + b".\r\n")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise self._lost(exc) from exc

    def _final_reply(self, conn: smtplib.SMTP) -> Reply:
        """The server's reply to the whole message: 250, else SmtpReplyError or OutcomeUnknown."""
        try:
            code, text = conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise OutcomeUnknown(f"no reply from {self.settings.host}:{self.settings.port} after the message "
                                 f"was sent ({exc or type(exc).__name__}); it may have been delivered") from exc
        if code != 250:
            self._refused(Reply(code, _decode(text)), "DATA", transaction_over=True)
        return Reply(code, _decode(text))

    def _lost(self, exc: BaseException) -> ConnectionLost:
        self.close()
        return ConnectionLost(f"connection to {self.settings.host}:{self.settings.port} lost: {exc}")

    def _refused(self, reply: Reply, stage: SmtpStage, transaction_over: bool = False) -> None:
        if reply.code == 421:  # the server is closing the connection
            self.close()
        elif not transaction_over and self._conn is not None:
            try:  # abandon the transaction so the connection can carry the next message
                self._conn.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
        raise SmtpReplyError(reply, stage)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
