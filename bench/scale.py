"""Sender workers on PostgreSQL: throughput against a distant provider, and a worker's memory.

1. Throughput. An aiosmtpd sink in its own process answers each message after 100 ms, as a distant
   provider does. A day of MESSAGES readers is planned (`newsletter send --plan-only`), then
   `newsletter worker --exit-when-idle` processes deliver it: 1 worker x 1 connection, 1 x 8 and
   2 workers x 8 connections. Printed: messages per second from the workers' start to their exit,
   and its ratio to what the connections could carry at best (connections / 0.1 s); the target is
   0.9 until the CPU is the limit. The 1 x 1 case sends at most SINGLE_CONNECTION_MESSAGES (10 per
   second at best: 10,000 would take 17 minutes and say nothing more).
2. Memory. A worker's peak RSS (VmHWM) while it sends, with 10,000 planned readers and with
   RSS_PLANNED (default 1,000,000). The planned rows beyond the first 10,000 are copies made in SQL of a
   planned row (subscriber and delivery, same rendition): what a worker reads is the same as after a
   real plan, which would take far longer to make here. A flat RSS shows that it never loads the list.

Without NEWSLETTER_TEST_POSTGRES_URL it runs itself under Debian's pg_virtualenv (a throwaway cluster).

    .venv/bin/python bench/scale.py [MESSAGES] [RSS_PLANNED]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DIGEST = ROOT / "examples" / "digests" / "2026-11-19.md"
DAY = "2026-11-19"
REPLY_DELAY = 0.1
SINGLE_CONNECTION_MESSAGES = 600
RSS_SECONDS = 25.0
"""How long a worker sends in the memory measurement before it is stopped (SIGTERM)."""


def server_url() -> str:
    given = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
    if given:
        return given
    if "PGHOST" not in os.environ:
        if shutil.which("pg_virtualenv") is None:
            raise SystemExit("needs PostgreSQL: set NEWSLETTER_TEST_POSTGRES_URL or install pg_virtualenv")
        os.execvp("pg_virtualenv", ["pg_virtualenv", "-t", sys.executable, *sys.argv])
    env = os.environ
    return (f"postgresql+psycopg://{env.get('PGUSER', 'postgres')}:{env.get('PGPASSWORD', '')}"
            f"@{env['PGHOST']}:{env.get('PGPORT', '5432')}/postgres")


def new_database(server: str) -> str:
    name = f"newsletter_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + f"/{name}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlowSink:
    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok: queued"


def run_sink(port: int, delay: float) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(SlowSink(delay), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def start_sink(delay: float) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(port), str(delay)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return sink, port
        except OSError:
            time.sleep(0.1)
    sink.kill()
    raise SystemExit("the sink did not start")


def newsletter(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "newsletter", "--config", str(config), *args]


def check(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:])} failed: {done.stderr.strip()[-1000:]}")
    return done.stdout


def planned_site(folder: Path, url: str, port: int, readers: int, connections: int) -> Path:
    """A config for the sink and a new database with DAY's edition planned for ``readers`` readers."""
    folder.mkdir(parents=True)
    config = folder / "config.toml"
    config.write_text(f"""
[site]
title = "Scale"
base_url = "https://papers.example.org"

[digests]
paths = ["{DIGEST}"]

[store]
url = "{url}"

[email]
from = "Scale Papers <papers@example.org>"

[smtp]
host = "127.0.0.1"
port = {port}
connections = {connections}
timeout = 10
""", encoding="utf-8")
    csv = folder / "readers.csv"
    csv.write_text("email,name\n" + "".join(f"reader{i:07d}@example.com,Reader {i}\n" for i in range(readers)),
                   encoding="utf-8")
    check(newsletter(config, "ingest"))
    check(newsletter(config, "subscribers", "import", str(csv)))
    check(newsletter(config, "send", "--plan-only", "--date", DAY))
    return config


def throughput(server: str, folder: Path, port: int, messages: int, workers: int, connections: int) -> float:
    config = planned_site(folder, new_database(server), port, messages, connections)
    started = time.monotonic()
    processes = [subprocess.Popen(newsletter(config, "worker", "--exit-when-idle"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    outputs = [p.communicate() for p in processes]
    elapsed = time.monotonic() - started
    if any(p.returncode for p in processes):
        raise SystemExit(f"a worker failed: {outputs}")
    sent = sum(int(out.split("sent ")[1].split(",")[0]) for out, _ in outputs)
    if sent != messages:
        raise SystemExit(f"sent {sent} of {messages}: {outputs}")
    return messages / elapsed


def copy_planned_rows(url: str, total: int) -> None:
    """Make ``total`` planned readers out of the first: subscribers and pending rows, the same rendition."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM subscribers").fetchone()[0]  # type: ignore[index]
        conn.execute("""
            INSERT INTO subscribers (email, email_key, name, categories, keywords, excluded, authors, cadence,
                                     weekday, status, token, created_at)
            SELECT 'copy' || i || '@example.com', 'copy' || i || '@example.com', 'Copy ' || i, categories,
                   keywords, excluded, authors, cadence, weekday, status, md5(i::text) || md5('t' || i), created_at
            FROM subscribers, generate_series(%s::int, %s::int) AS i
            WHERE subscribers.id = (SELECT min(id) FROM subscribers)
        """, (have + 1, total))
        conn.execute("""
            INSERT INTO deliveries (date, edition, subscriber_id, email, message_id, state, attempts,
                                    unknown_outcomes, updated_at, rendition_id, followed_note)
            SELECT d.date, d.edition, s.id, s.email, '<copy.' || s.id || '@example.org>', 'pending', 0, 0, now(),
                   d.rendition_id, ''
            FROM subscribers s, (SELECT * FROM deliveries ORDER BY id LIMIT 1) d
            WHERE s.email LIKE 'copy%%'
        """)
        conn.execute("ANALYZE")


def peak_rss(server: str, folder: Path, port: int, planned: int) -> tuple[float, int]:
    """A worker's peak RSS in MB after RSS_SECONDS of sending, and how many it sent."""
    url = new_database(server)
    config = planned_site(folder, url, port, min(planned, 10_000), 8)
    if planned > 10_000:
        copy_planned_rows(url, planned)
    worker = subprocess.Popen(newsletter(config, "worker"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    time.sleep(RSS_SECONDS)
    status = Path(f"/proc/{worker.pid}/status").read_text()
    worker.terminate()
    out, err = worker.communicate(timeout=60)
    if worker.returncode != 0:
        raise SystemExit(f"the worker failed: {err}")
    kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    return kb / 1024, int(out.split("sent ")[1].split(",")[0])


def main() -> None:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rss_planned = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    server = server_url()
    cpus = os.cpu_count()
    print(f"Sink answers after {REPLY_DELAY * 1000:.0f} ms; PostgreSQL; {cpus} CPUs (shared with whatever else runs)")
    with tempfile.TemporaryDirectory() as tmp:
        sink, port = start_sink(REPLY_DELAY)
        try:
            print(f"{'workers x connections':<22} {'messages':>9} {'msg/s':>8} {'best':>6} {'ratio':>6}")
            for n, (workers, connections) in enumerate(((1, 1), (1, 8), (2, 8))):
                count = min(messages, SINGLE_CONNECTION_MESSAGES) if workers * connections == 1 else messages
                rate = throughput(server, Path(tmp) / f"t{n}", port, count, workers, connections)
                best = workers * connections / REPLY_DELAY
                print(f"{f'{workers} x {connections}':<22} {count:>9} {rate:>8.1f} {best:>6.0f} {rate / best:>6.2f}",
                      flush=True)
        finally:
            sink.terminate()
            sink.wait()
        sink, port = start_sink(0.0)  # as fast as the worker can go: the most churn in the time measured
        try:
            print(f"\nA worker (8 connections, sink answering at once) sending for {RSS_SECONDS:.0f} s")
            print(f"{'planned readers':>15} {'sent':>7} {'peak RSS MB':>12}")
            for n, planned in enumerate(sorted({10_000, rss_planned})):
                rss, sent = peak_rss(server, Path(tmp) / f"r{n}", port, planned)
                print(f"{planned:>15,} {sent:>7} {rss:>12.1f}", flush=True)
        finally:
            sink.terminate()
            sink.wait()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        run_sink(int(sys.argv[2]), float(sys.argv[3]))
    else:
        main()
