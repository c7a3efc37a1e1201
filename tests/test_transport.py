"""The SMTP transport against a real aiosmtpd server on 127.0.0.1: replies, reuse, drops, TLS, login."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from hypothesis import given
from hypothesis import strategies as st

from newsletter.dispatch.transport import (
    ConnectError,
    ConnectionLost,
    Reply,
    SmtpReplyError,
    SmtpTransport,
    dot_stuffed,
    smtp_password,
)
from newsletter.errors import ConfigError, DeliveryError
from newsletter.models import Subscriber
from smtp_helpers import SENDER, Recorder, delivery_project, free_port, smtp_server, smtp_settings

DAY = dt.date(2025, 3, 4)
RECIPIENTS = [f"r{i}@example.com" for i in range(5)] + ["gone@example.com", "busy@example.com", "ok@example.com",
                                                        "a@example.com"]


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The real planner's message for each recipient these tests use, from a store with a tiny digest."""
    with delivery_project(tmp_path_factory.mktemp("transport"), DAY) as project:
        project.store.upsert_subscribers([Subscriber(email=email) for email in RECIPIENTS])
        plan = project.plan(DAY)
        return {m.subscriber.email: plan.message_bytes(m) for m in plan.messages}


class NotingRecorder(Recorder):
    """Also notes, per message, the client's address (its port tells connections apart) and the
    content as the server received it."""

    peers: list[Any]
    contents: list[bytes]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.peers = [*getattr(self, "peers", []), session.peer]
        self.contents = [*getattr(self, "contents", []), envelope.original_content]
        return await super().handle_DATA(server, session, envelope)


def test_sends_over_one_reused_connection_and_returns_the_servers_reply(messages: dict[str, bytes]) -> None:
    handler = NotingRecorder()
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_settings(server.port))
        replies = [transport.send(SENDER, f"r{i}@example.com", messages[f"r{i}@example.com"]) for i in range(5)]
        transport.close()
    assert [r.code for r in replies] == [250] * 5
    assert replies[0].enhanced == "2.0.0" and "queued" in replies[0].text
    assert [r for r, _ in handler.accepted] == [f"r{i}@example.com" for i in range(5)]
    assert len(set(handler.peers)) == 1


@given(st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\n", b"\r", b"x", b" .", b"\r\n.\r\n"])).map(b"".join))
def test_dot_stuffing_doubles_a_dot_at_each_line_start_like_smtplib(message: bytes) -> None:
    stuffed = dot_stuffed(message)
    expected = re.sub(rb"(?m)^\.", b"..", message)  # what smtplib.SMTP.data() sends
    assert stuffed == (expected if expected.endswith(b"\r\n") else expected + b"\r\n")


def test_lines_that_start_with_a_dot_arrive_unchanged(messages: dict[str, bytes]) -> None:
    body = b".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n"
    message = messages["r0@example.com"] + body
    handler = NotingRecorder()
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_settings(server.port))
        assert transport.send(SENDER, "r0@example.com", message).code == 250
        assert transport.send(SENDER, "r0@example.com", message.removesuffix(b"\r\n")).code == 250
        transport.close()
    assert handler.contents == [message, message]


def test_meanwhile_runs_once_before_connecting_or_while_mail_from_is_pending(messages: dict[str, bytes]) -> None:
    calls: list[str] = []
    transport = SmtpTransport(smtp_settings(free_port(), timeout=2.0))
    with pytest.raises(ConnectError):  # nothing to overlap with a connection attempt: it ran first
        transport.send(SENDER, "a@example.com", messages["a@example.com"], meanwhile=lambda: calls.append("first"))
    assert calls == ["first"]

    def fails() -> None:
        raise RuntimeError("the store is gone")

    handler = Recorder()
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_settings(server.port))
        transport.send(SENDER, "r0@example.com", messages["r0@example.com"])
        with pytest.raises(RuntimeError):
            transport.send(SENDER, "r1@example.com", messages["r1@example.com"], meanwhile=fails)
        # The failed send's MAIL FROM reply was never read; the next send must not be out of step.
        assert transport.send(SENDER, "r2@example.com", messages["r2@example.com"]).code == 250
        transport.close()
    assert [r for r, _ in handler.accepted] == ["r0@example.com", "r2@example.com"]


def test_awaiting_runs_once_the_whole_message_is_out_and_before_its_reply_is_read(
        messages: dict[str, bytes]) -> None:
    handler = Recorder()
    seen: list[list[str]] = []

    def awaiting() -> None:  # what the server has by now: the whole message, so it can answer
        deadline = time.monotonic() + 5
        while not handler.accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append([r for r, _ in handler.accepted])

    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_settings(server.port))
        reply = transport.send(SENDER, "r0@example.com", messages["r0@example.com"], awaiting=awaiting)
        transport.close()
    assert reply.code == 250
    assert seen == [["r0@example.com"]]


def test_a_refusal_names_the_stage_and_the_connection_carries_on(messages: dict[str, bytes]) -> None:
    handler = Recorder(
        rcpt_fault=lambda rcpt, _n: "550 5.1.1 no such user" if rcpt.startswith("gone") else None,
        data_fault=lambda rcpt, _n: "451 4.3.0 try later" if rcpt.startswith("busy") else None,
    )
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_settings(server.port))
        with pytest.raises(SmtpReplyError) as rcpt_refusal:
            transport.send(SENDER, "gone@example.com", messages["gone@example.com"])
        with pytest.raises(SmtpReplyError) as data_refusal:
            transport.send(SENDER, "busy@example.com", messages["busy@example.com"])
        assert transport.send(SENDER, "ok@example.com", messages["ok@example.com"]).code == 250
        transport.close()
    assert (rcpt_refusal.value.stage, rcpt_refusal.value.reply.code, rcpt_refusal.value.reply.enhanced) == (
        "RCPT TO", 550, "5.1.1")
    assert (data_refusal.value.stage, data_refusal.value.reply.code) == ("DATA", 451)
    assert handler.per_recipient() == {"ok@example.com": 1}


def test_a_dropped_connection_is_reported_and_the_next_send_reconnects(messages: dict[str, bytes]) -> None:
    handler = Recorder(data_fault=lambda rcpt, n: "drop" if n == 0 else None)
    with smtp_server(handler) as server:
        transport = SmtpTransport(smtp_settings(server.port))
        with pytest.raises(ConnectionLost):
            transport.send(SENDER, "a@example.com", messages["a@example.com"])
        assert transport.send(SENDER, "a@example.com", messages["a@example.com"]).code == 250
        transport.close()
    assert handler.per_recipient() == {"a@example.com": 1}


def test_no_server_is_a_connect_error(messages: dict[str, bytes]) -> None:
    transport = SmtpTransport(smtp_settings(free_port(), timeout=2.0))
    with pytest.raises(ConnectError, match=r"cannot connect to 127\.0\.0\.1"):
        transport.send(SENDER, "a@example.com", messages["a@example.com"])


def test_enhanced_status_must_match_the_reply_class() -> None:
    assert Reply(550, "5.1.1 <x@example.com>: user unknown").enhanced == "5.1.1"
    assert Reply(550, "4.1.1 inconsistent").enhanced is None
    assert Reply(554, "Transaction failed").enhanced is None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed; it makes the self-signed certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def _authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"news", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535 itself


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_and_login_with_the_password_from_the_environment(
    security: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, messages: dict[str, bytes],
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    handler = Recorder()
    tls = _server_tls(certificate)
    # aiosmtpd does not count implicit TLS as TLS for AUTH, hence auth_require_tls=False there.
    server_args: dict[str, Any] = (
        {"tls_context": tls, "require_starttls": True} if security == "starttls"
        else {"ssl_context": tls, "auth_require_tls": False})
    with smtp_server(handler, authenticator=_authenticator, auth_required=True, **server_args) as server:
        settings = smtp_settings(server.port, security=security, ca_file=str(certificate[0]), username="news",
                                 password_env="TEST_SMTP_PASSWORD")
        transport = SmtpTransport(settings, smtp_password(settings))
        assert transport.send(SENDER, "a@example.com", messages["a@example.com"]).code == 250
        transport.close()
    assert handler.per_recipient() == {"a@example.com": 1}


def test_a_refused_login_is_a_delivery_error_naming_the_user(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, messages: dict[str, bytes],
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    with smtp_server(Recorder(), authenticator=_authenticator, auth_required=True,
                     tls_context=_server_tls(certificate), require_starttls=True) as server:
        settings = smtp_settings(server.port, security="starttls", ca_file=str(certificate[0]), username="news",
                                 password_env="TEST_SMTP_PASSWORD")
        transport = SmtpTransport(settings, smtp_password(settings))
        with pytest.raises(DeliveryError, match="login refused for 'news'") as refused:
            transport.send(SENDER, "a@example.com", messages["a@example.com"])
    assert refused.value.hint is not None and "TEST_SMTP_PASSWORD" in refused.value.hint


def test_an_untrusted_certificate_is_refused(certificate: tuple[Path, Path], messages: dict[str, bytes]) -> None:
    with smtp_server(Recorder(), ssl_context=_server_tls(certificate)) as server:
        transport = SmtpTransport(smtp_settings(server.port, security="tls"))
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            transport.send(SENDER, "a@example.com", messages["a@example.com"])


def test_the_password_comes_only_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = smtp_settings(25, username="news", password_env="TEST_SMTP_PASSWORD")
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="TEST_SMTP_PASSWORD"):
        smtp_password(settings)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "pw")
    assert smtp_password(settings) == "pw"
    assert smtp_password(smtp_settings(25)) is None
