"""`newsletter publish` and the pipeline it shares with the daemon, against a real aiosmtpd server.

Concurrency and shutdown run real processes: two publishes at once, and a daemon stopped by
SIGTERM in the middle of a send.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from helpers import run
from newsletter.config import Settings
from newsletter.store import Store
from schedule_helpers import break_delivery_log, make_site, newsletter_process, write_digest
from smtp_helpers import Recorder, free_port, smtp_server

UTC = dt.UTC
ZONE = "America/New_York"


def today() -> dt.date:
    return dt.datetime.now(ZoneInfo(ZONE)).date()


def test_publish_sends_today_once_and_a_rerun_sends_nothing(tmp_path: Path, store_url: str) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\n', store_url=store_url)
        write_digest(settings, today())
        first = run(settings.path, "publish")
        assert first.exit_code == 0, first.output
        assert (settings.resolve("feeds") / "papers.atom").is_file()
        second = run(settings.path, "publish", "--date", today().isoformat())
        assert second.exit_code == 0, second.output
    assert sorted(recorder.per_recipient().values()) == [1] * 5
    assert "5 sent by earlier runs" in second.output


def test_publish_never_sends_an_older_day(tmp_path: Path, store_url: str) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\ndeadline = "23:59"\n', store_url=store_url)
        write_digest(settings, today() - dt.timedelta(days=1))
        result = run(settings.path, "publish")
    assert recorder.count() == 0
    if dt.datetime.now(ZoneInfo(ZONE)).time() < dt.time(23, 59):
        assert result.exit_code == 1  # not there yet: run again before the deadline
        assert f"no digest for {today().isoformat()} yet" in result.output


def write_empty_digest(settings: Settings, date: dt.date) -> None:
    """A digest for ``date`` whose table has no rows."""
    (settings.resolve("digests") / f"{date}.md").write_text(
        f"## Papers for {date}\n\n| Title | Authors | Summary |\n|-------|---------|---------|\n", encoding="utf-8")


def test_an_empty_digest_sends_nothing_and_status_says_why(tmp_path: Path, store_url: str) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\n', store_url=store_url)
        date = today()
        write_empty_digest(settings, date)
        result = run(settings.path, "publish")
        assert result.exit_code == 0, result.output
    assert recorder.count() == 0
    status = run(settings.path, "status")
    assert f"{date.isoformat()}  no issue: the digest lists no papers" in status.output


def test_an_explicit_date_sends_a_day_noted_without_an_issue(tmp_path: Path, store_url: str) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\n', store_url=store_url)
        date = today()
        write_empty_digest(settings, date)
        assert run(settings.path, "publish").exit_code == 0  # empty: noted "no issue"
        write_digest(settings, date)  # the real digest comes afterwards
        automatic = run(settings.path, "publish")  # what cron and the daemon run: the note stands
        assert automatic.exit_code == 0, automatic.output
        assert "already noted" in automatic.output and recorder.count() == 0
        explicit = run(settings.path, "publish", "--date", date.isoformat())
        assert explicit.exit_code == 0, explicit.output
        assert "note overridden" in explicit.output
        again = run(settings.path, "publish", "--date", date.isoformat())
        assert again.exit_code == 0, again.output
    assert sorted(recorder.per_recipient().values()) == [1] * 5
    assert "5 sent by earlier runs" in again.output
    status = run(settings.path, "status").stdout  # stderr carries the example.org warning
    assert status.strip() == f"{date.isoformat()}  5 sent"
    assert "sends a day noted as having no issue" in " ".join(run(None, "publish", "--help").output.split())


@pytest.mark.usefixtures("store_backend")
def test_an_unexpected_database_error_exits_1_with_a_message(tmp_path: Path) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\n')
        write_digest(settings, today())
        break_delivery_log(settings, "database or disk is full (simulated)")
        result = run(settings.path, "publish")  # an exception escaping the command would fail the test here
        sent = run(settings.path, "send")
    assert result.exit_code == 1
    # One line on both backends: what failed, the driver's first line, what to check; not the driver's
    # name for the error (IntegrityError, IntegrityConstraintViolation) nor PostgreSQL's CONTEXT line.
    (summary,) = [line for line in result.output.splitlines() if "incomplete" in line]
    assert ("error: send: the database refused a change (table deliveries): database or disk is full (simulated); "
            "hint: check the constraints and triggers on that table") in summary
    # `newsletter send` says the same, with the hint on a line of its own as every error of the CLI.
    assert sent.exit_code == 1
    lines = sent.output.splitlines()
    error = lines.index("Error: the database refused a change (table deliveries): database or disk is full (simulated)")
    assert lines[error + 1].startswith("  hint: check the constraints and triggers on that table")
    assert lines[error + 2:] == []
    for output in (result.output, sent.output):
        assert "CONTEXT" not in output and "Integrity" not in output and "Traceback" not in output
    assert recorder.count() == 0


def test_two_publishes_at_once_mail_each_subscriber_once(tmp_path: Path, store_url: str) -> None:
    recorder = Recorder()

    async def slow_data(server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)  # long enough for both processes to be sending at the same time
        return await Recorder.handle_DATA(recorder, server, session, envelope)

    recorder.handle_DATA = slow_data  # type: ignore[method-assign]
    with smtp_server(recorder) as server:
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\n', subscribers=40, store_url=store_url)
        write_digest(settings, today())
        processes = [newsletter_process(settings, "publish") for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert sorted(recorder.per_recipient().values()) == [1] * 40


def test_sigterm_finishes_the_message_in_flight_and_exits_0(tmp_path: Path, store_url: str) -> None:
    recorder = Recorder()

    async def slow_data(server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.3)
        return await Recorder.handle_DATA(recorder, server, session, envelope)

    recorder.handle_DATA = slow_data  # type: ignore[method-assign]
    with smtp_server(recorder) as server:
        # The publish time passed a minute ago, so the daemon's start-up catch-up begins sending at once.
        local = dt.datetime.now(ZoneInfo(ZONE)) - dt.timedelta(minutes=1)
        cron = f"{local.minute} {local.hour} * * *"
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\npublish = "{cron}"\n', subscribers=30,
                             store_url=store_url)
        write_digest(settings, local.date())
        daemon = newsletter_process(settings, "schedule")
        deadline = time.monotonic() + 60
        while recorder.count() < 2 and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.05)
        daemon.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        _out, err = daemon.communicate(timeout=30)
        stopped_after = time.monotonic() - signalled
        accepted = recorder.count()
    assert daemon.returncode == 0, err
    assert stopped_after < 5, err
    assert 2 <= accepted < 30
    with Store.from_settings(settings) as store:
        counts = store.delivery_counts([local.date()])[local.date()]
    assert counts.get("sent") == accepted  # the message in flight was finished and recorded
    assert "sending" not in counts and counts.get("pending", 0) + counts.get("retry", 0) == 30 - accepted
    assert "SIGTERM" in err and " INFO " in err

    with smtp_server(recorder) as server:
        rest = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\n', subscribers=0, store_url=store_url)
        result = run(rest.path, "publish", "--date", local.date().isoformat())
        assert result.exit_code == 0, result.output
    assert sorted(recorder.per_recipient().values()) == [1] * 30


@pytest.mark.usefixtures("store_backend")
def test_publish_with_a_bad_schedule_exits_2(tmp_path: Path) -> None:
    settings_dir = tmp_path / "site"
    settings_dir.mkdir()
    make_site(settings_dir, free_port(), 'timezone = "UTC"\n')
    config = settings_dir / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('timezone = "UTC"', 'timezone = "Utopia/Nowhere"'),
                      encoding="utf-8")
    result = run(config, "publish")
    assert result.exit_code == 2
    assert "schedule.timezone" in result.output
