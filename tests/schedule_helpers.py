"""A site for the schedule and publish tests: config, a digest dated as asked, stored subscribers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from helpers import write_config
from newsletter.config import Settings, load_settings
from newsletter.models import Subscriber
from newsletter.store import Store

EXAMPLE_DIGEST = Path(__file__).resolve().parent.parent / "examples" / "digests" / "2026-11-20.md"


def make_site(folder: Path, smtp_port: int, schedule: str = "", subscribers: int = 5, smtp: str = "",
              store_url: str = "sqlite:///var/test.db", sections: str = "") -> Settings:
    """A config in ``folder`` sending to 127.0.0.1:``smtp_port``, with ``subscribers`` active readers;
    ``schedule`` and ``smtp`` are extra lines for those sections, ``sections`` more sections."""
    (folder / "digests").mkdir(parents=True, exist_ok=True)
    path = write_config(folder, f"""
[smtp]
host = "127.0.0.1"
port = {smtp_port}
timeout = 5
lease_seconds = 30
{smtp}
[schedule]
{schedule}
{sections}
""", store_url=store_url)
    settings = load_settings(path)
    with Store.from_settings(settings) as store:
        for i in range(subscribers):
            store.add_subscriber(Subscriber(email=f"reader{i:02d}@example.com"))
    return settings


def write_digest(settings: Settings, date: dt.date) -> Path:
    """The example digest with its date (heading and file name) changed to ``date``."""
    text = EXAMPLE_DIGEST.read_text(encoding="utf-8").replace("2026-11-20", date.isoformat())
    path = settings.resolve("digests") / f"{date.isoformat()}.md"
    path.write_text(text, encoding="utf-8")
    return path


def newsletter_process(settings: Settings, *args: str) -> subprocess.Popen[str]:
    """``newsletter --config ... ARGS`` as a real process (its own pid, its own signals)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(settings.path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


# A fault in the database itself: a trigger that refuses every new delivery row with ``message``, in each
# backend's words. The drivers name the error differently (IntegrityError, IntegrityConstraintViolation),
# and PostgreSQL adds a CONTEXT line: the operator reads the same one line on both (store/failures.py).
_BREAK_DELIVERY_LOG = {
    "sqlite": ["CREATE TRIGGER broken BEFORE INSERT ON deliveries BEGIN SELECT RAISE(ABORT, '{message}'); END"],
    "postgresql": [
        "CREATE FUNCTION broken() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation'; END $$",
        "CREATE TRIGGER broken BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION broken()",
    ],
}


def break_delivery_log(settings: Settings, message: str) -> None:
    """Every new delivery row fails with ``message``."""
    with Store.from_settings(settings) as store, store.engine.begin() as conn:
        for statement in _BREAK_DELIVERY_LOG[conn.dialect.name]:
            conn.exec_driver_sql(statement.format(message=message))


def repair_delivery_log(settings: Settings) -> None:
    with Store.from_settings(settings) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER broken" + (" ON deliveries" if conn.dialect.name == "postgresql" else ""))
