"""`newsletter schedule` as a real process: publish set to the next minute, subscribers imported through
the CLI, a digest dated today, a real aiosmtpd server. Waits for a real cron minute (up to ~2 min)."""

from __future__ import annotations

import datetime as dt
import signal
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from helpers import run
from schedule_helpers import make_site, newsletter_process, write_digest
from smtp_helpers import Recorder, smtp_server

pytestmark = pytest.mark.usefixtures("store_backend")

ZONE = "Europe/Berlin"
READERS = [f"reader{i}@example.net" for i in range(8)]


@pytest.mark.slow
def test_the_daemon_publishes_at_the_next_minute_and_stops_on_sigterm(tmp_path: Path) -> None:
    recorder = Recorder()
    with smtp_server(recorder) as server:
        # The next whole minute, unless setting up (slow on a loaded machine) could reach it first: a daemon
        # started after its fire time waits for the next day.
        now = dt.datetime.now(ZoneInfo(ZONE))
        fire = (now + dt.timedelta(minutes=1 if now.second < 40 else 2)).replace(second=0, microsecond=0)
        cron = f"{fire.minute} {fire.hour} * * *"
        settings = make_site(tmp_path, server.port, f'timezone = "{ZONE}"\npublish = "{cron}"\nlog_level = "DEBUG"\n',
                             subscribers=0)
        csv = tmp_path / "readers.csv"
        csv.write_text("email,name,categories\n" + "".join(f"{r},,\n" for r in READERS), encoding="utf-8")
        assert run(settings.path, "subscribers", "import", str(csv)).exit_code == 0
        write_digest(settings, fire.date())
        daemon = newsletter_process(settings, "schedule")
        try:
            deadline = time.monotonic() + (fire - dt.datetime.now(ZoneInfo(ZONE))).total_seconds() + 45
            while recorder.count() < len(READERS) and time.monotonic() < deadline and daemon.poll() is None:
                time.sleep(0.2)
            time.sleep(1.0)  # a second run, if there were one, would show up here
            assert sorted(recorder.per_recipient().items()) == [(r, 1) for r in sorted(READERS)]
            assert dt.datetime.now(ZoneInfo(ZONE)) >= fire  # sent by the cron minute, not before
        finally:
            daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=15)
    assert daemon.returncode == 0, err
    assert "job publish" in err and "stopped" in err
    status = run(settings.path, "status", "--date", fire.date().isoformat())
    assert f"{len(READERS)} sent" in status.output
