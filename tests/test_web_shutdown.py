"""`newsletter serve` stopped by SIGTERM (systemd, docker) or Ctrl+C: confirmations already promised
still go out, and the exit status is 0. A real process, a real SMTP server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from newsletter.config import load_settings
from newsletter.dispatch.site_mail import Mailer
from smtp_helpers import free_port, smtp_server
from web_support import SECRET, SECRET_ENV, Inbox, wait_until_up, web_config

SMTP_SECONDS = 0.5


@dataclass
class SlowInbox(Inbox):
    """A mail server that takes SMTP_SECONDS to accept each message, so emails queue up in the sender."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(SMTP_SECONDS)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.usefixtures("store_backend")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_sends_the_queued_confirmations_first(tmp_path: Path, stop: signal.Signals) -> None:
    addresses = [f"reader{i}@example.org" for i in range(4)]
    with smtp_server(SlowInbox()) as smtp:
        config = web_config(tmp_path, smtp.port, web="subscribe_ip_burst = 100")
        port = free_port()
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, SECRET_ENV: SECRET})
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base + "/", process)
            for address in addresses:
                assert requests.post(base + "/subscribe", data={"email": address}, timeout=10).status_code == 200
            process.send_signal(stop)  # the emails take 4 x SMTP_SECONDS: most are still queued
            assert process.wait(timeout=30) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        for address in addresses:  # already delivered when the process ended, not merely on their way
            assert len(smtp.handler.to(address)) == 1, (address, log.read_text())
    assert "unsent" not in log.read_text()


def test_the_wait_for_queued_emails_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with smtp_server(SlowInbox()) as smtp:
        mailer = Mailer(load_settings(web_config(tmp_path, smtp.port)))
        for i in range(5):
            mailer.submit(f"r{i}@example.org", b"Subject: confirm\r\n\r\nFollow the link.\r\n")
        started = time.monotonic()
        unsent = mailer.close(timeout=SMTP_SECONDS)
        assert time.monotonic() - started < 2 * SMTP_SECONDS
        assert 3 <= unsent <= 5  # one, perhaps two, went out in the time allowed


@pytest.mark.usefixtures("store_backend")
def test_a_port_in_use_is_named_with_what_to_do_and_nothing_claims_to_serve(tmp_path: Path) -> None:
    config = web_config(tmp_path, free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
            capture_output=True, text=True, env={**os.environ, SECRET_ENV: SECRET}, timeout=60, check=False)
    assert done.returncode == 1, done.stderr  # the config is valid: the same command works once the port is free
    assert f"port {port} on 127.0.0.1 is in use; pick another with --port or [web] port" in done.stderr
    assert "serving" not in done.stderr
    assert "check that the path exists" not in done.stderr
