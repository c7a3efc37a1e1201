"""`newsletter schedule` as a real process: publish set to the next minute, subscribers imported through
the CLI, a digest dated today, a real aiosmtpd server. Waits for a real cron minute (up to ~2 min), on
SQLite and PostgreSQL at the same time (``tests/simultaneous.py``)."""

from __future__ import annotations

import datetime as dt
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schedule_helpers import make_site, newsletter_process, write_digest
from simultaneous import BACKENDS, Simultaneous, scenario_fixture
from smtp_helpers import Recorder, smtp_server

ZONE = "Europe/Berlin"
READERS = [f"reader{i}@example.net" for i in range(8)]


@dataclass(frozen=True)
class Published:
    imported: tuple[str, int]
    """What `subscribers import` printed on stderr, and its exit code."""
    per_recipient: dict[str, int]
    fire: dt.datetime
    all_sent_at: dt.datetime
    returncode: int | None
    log: str
    status: str
    """What `newsletter status --date` printed afterwards."""


def publish_at_the_next_minute(folder: Path, store_url: str) -> Published:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        # The next whole minute, unless setting up (slow on a loaded machine) could reach it first: a daemon
        # started after its fire time waits for the next day.
        now = dt.datetime.now(ZoneInfo(ZONE))
        fire = (now + dt.timedelta(minutes=1 if now.second < 40 else 2)).replace(second=0, microsecond=0)
        cron = f"{fire.minute} {fire.hour} * * *"
        settings = make_site(folder, server.port, f'timezone = "{ZONE}"\npublish = "{cron}"\nlog_level = "DEBUG"\n',
                             subscribers=0, store_url=store_url)
        csv = folder / "readers.csv"
        csv.write_text("email,name,categories\n" + "".join(f"{r},,\n" for r in READERS), encoding="utf-8")
        importing = newsletter_process(settings, "subscribers", "import", str(csv))
        imported = (importing.communicate(timeout=60)[1], importing.returncode)
        write_digest(settings, fire.date())
        daemon = newsletter_process(settings, "schedule")
        try:
            deadline = time.monotonic() + (fire - dt.datetime.now(ZoneInfo(ZONE))).total_seconds() + 45
            while recorder.count() < len(READERS) and time.monotonic() < deadline and daemon.poll() is None:
                time.sleep(0.2)
            all_sent_at = dt.datetime.now(ZoneInfo(ZONE))
            time.sleep(1.0)  # a second run, if there were one, would show up here
            per_recipient = dict(recorder.per_recipient())
        finally:
            daemon.send_signal(signal.SIGTERM)
            _out, log = daemon.communicate(timeout=15)
    status = newsletter_process(settings, "status", "--date", fire.date().isoformat()).communicate(timeout=60)[0]
    return Published(imported, per_recipient, fire, all_sent_at, daemon.returncode, log, status)


published = scenario_fixture(publish_at_the_next_minute)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_daemon_publishes_at_the_next_minute_and_stops_on_sigterm(published: Simultaneous[Published],
                                                                      backend: str) -> None:
    outcome = published.outcome(backend)
    assert outcome.imported[1] == 0, outcome.imported[0]
    assert sorted(outcome.per_recipient.items()) == [(r, 1) for r in sorted(READERS)]
    assert outcome.all_sent_at >= outcome.fire  # sent by the cron minute, not before
    assert outcome.returncode == 0, outcome.log
    assert "job publish" in outcome.log and "stopped" in outcome.log
    assert f"{len(READERS)} sent" in outcome.status
