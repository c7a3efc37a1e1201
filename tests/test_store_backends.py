"""The whole pipeline through the real CLI on each store: a real SQLite file and a real PostgreSQL server.

The PostgreSQL cases skip, saying why, where no server can be had (see ``postgres_server`` in conftest).
Each case is run as an operator would: `newsletter` processes against one config, a real aiosmtpd server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import feedparser
from sqlalchemy import create_engine, text

from helpers import write_config
from newsletter.models import Subscriber
from newsletter.store import Store
from smtp_helpers import Recorder, smtp_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"
DAY = "2026-11-19"


def newsletter(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config.parent)


def finish(process: subprocess.Popen[str], expected: int = 0) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == expected, err
    return out


def run_cli(config: Path, *args: str) -> str:
    return finish(newsletter(config, *args))


def smtp_config(folder: Path, store_url: str, digests: list[str], port: int = 1) -> Path:
    return write_config(folder, store_url=store_url, digests=json.dumps(digests), extra=f"""
[smtp]
host = "127.0.0.1"
port = {port}
timeout = 10
retry_delay = 0.05
""")


def add_readers(config: Path, count: int) -> None:
    csv = config.parent / "readers.csv"
    csv.write_text("email,name\n" + "".join(f"reader{i:04d}@example.com,Reader {i}\n" for i in range(count)),
                   encoding="utf-8")
    run_cli(config, "subscribers", "import", str(csv))


def test_ingest_is_idempotent_and_feeds_parse(tmp_path: Path, store_url: str, corpus_dir: Path) -> None:
    month = corpus_dir / "daily-ai-papers" / "2025" / "01"
    config = smtp_config(tmp_path, store_url, [str(month), str(corpus_dir / "seeds")])
    processes = [newsletter(config, "ingest", "--json") for _ in range(3)]  # three at once on a new store
    reports = [json.loads(finish(p)) for p in processes]
    again = json.loads(run_cli(config, "ingest", "--json"))
    stored = sum(r["papers"]["new"] for r in reports)

    assert stored > 250
    assert again["papers"]["new"] == again["papers"]["updated"] == 0
    assert again["papers"]["unchanged"] == stored
    run_cli(config, "feeds")
    feed = feedparser.parse((tmp_path / "feeds" / "papers.atom").read_bytes())
    assert feed.bozo == 0
    assert len(feed.entries) > 0


def test_send_mails_each_reader_once_even_with_two_senders(tmp_path: Path, store_url: str) -> None:
    handler = Recorder()
    with smtp_server(handler) as server:
        config = smtp_config(tmp_path, store_url, [str(EXAMPLES / f"{DAY}.md")], port=server.port)
        run_cli(config, "ingest")
        add_readers(config, 300)
        senders = [newsletter(config, "send", "--date", DAY, "--json") for _ in range(2)]
        reports = [json.loads(finish(s)) for s in senders]
        rerun = json.loads(run_cli(config, "send", "--date", DAY, "--json"))
        status = json.loads(run_cli(config, "status", "--date", DAY, "--json"))

    per_reader = handler.per_recipient()
    assert len(per_reader) == 300
    assert set(per_reader.values()) == {1}
    assert all(ids and len(ids) == 1 for ids in handler.message_ids().values())
    assert all(r["ok"] for r in reports)
    assert rerun["ok"] and handler.count() == 300
    assert json.dumps(status).count('"sent": 300') == 1


def test_subscribers_round_trip(tmp_path: Path, store_url: str) -> None:
    config = smtp_config(tmp_path, store_url, [str(EXAMPLES / f"{DAY}.md")])
    add_readers(config, 5)
    run_cli(config, "subscribers", "unsubscribe", "reader0001@example.com")
    run_cli(config, "subscribers", "remove", "reader0002@example.com")
    listed = json.loads(run_cli(config, "subscribers", "list", "--status", "all", "--json"))["subscribers"]
    exported = run_cli(config, "subscribers", "export")

    by_email = {s["email"]: s["status"] for s in listed}
    assert by_email == {"reader0000@example.com": "active", "reader0001@example.com": "unsubscribed",
                        "reader0003@example.com": "active", "reader0004@example.com": "active"}
    assert exported.count("@example.com") == 4


def test_prune_removes_a_vanished_files_listing(tmp_path: Path, store_url: str) -> None:
    digests = tmp_path / "digests"
    digests.mkdir()
    for day in ("2026-11-18", "2026-11-19"):
        (digests / f"{day}.md").write_text((EXAMPLES / "2026-11-19.md").read_text(encoding="utf-8")
                                           .replace("2026-11-19", day), encoding="utf-8")
    config = smtp_config(tmp_path, store_url, [str(digests)])
    first = json.loads(run_cli(config, "ingest", "--json"))
    (digests / "2026-11-18.md").unlink()
    pruned = json.loads(run_cli(config, "ingest", "--prune", "--json"))
    with Store(store_url) as store:
        days = store.dates()

    assert first["days"] == 2
    assert [p["file"] for p in pruned["pruned"]] == ["digests/2026-11-18.md"]
    assert pruned["pruned"][0]["dates"] == ["2026-11-18"]
    assert [d.isoformat() for d in days] == ["2026-11-19"]


def test_reactivating_a_bounced_reader(tmp_path: Path, store_url: str) -> None:
    config = smtp_config(tmp_path, store_url, [str(EXAMPLES / f"{DAY}.md")])
    add_readers(config, 2)
    run_cli(config, "subscribers", "update", "reader0000@example.com", "--status", "bounced")
    said = run_cli(config, "subscribers", "update", "reader0000@example.com", "--reactivate")
    listed = json.loads(run_cli(config, "subscribers", "list", "--json"))["subscribers"]

    assert "bounced" in said
    assert {s["email"]: s["status"] for s in listed}["reader0000@example.com"] == "active"


def test_a_store_outlives_a_database_restart_without_a_failed_statement(postgres_url: str) -> None:
    # PostgreSQL only: the subject is the server closing the pooled connections (a restart, a failover).
    with Store(postgres_url) as store:
        store.add_subscriber(Subscriber(email="ada@example.org"))
        with create_engine(postgres_url).connect() as admin:  # what a restart does to every other connection
            closed = admin.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()

        emails = [s.email for s in store.subscribers()]

    assert closed >= 1
    assert emails == ["ada@example.org"]
