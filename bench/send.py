"""Delivery throughput: `DeliveryRun` (delivery log, leases, per-message commit) vs a bare smtplib loop.

Both send the same 2,000 real-size digests (the plan's bytes for a corpus day; the example digest
when ../shared/corpus is absent) to an aiosmtpd sink running as a separate process, on
127.0.0.1. The bare loop sends bytes prepared beforehand over one reused connection: the limit on
this machine. The delivery run does everything a real send does -- creates the rows, claims them,
builds each message from the plan, sends it, commits it as sent -- with [smtp] connections = 1
(the default) and, for reference, 2. Runs alternate and the medians are compared.
The bare loop uses smtplib's ``data()``; our transport sends the same bytes on the wire but
dot-stuffs them with ``bytes.replace`` instead of smtplib's regex, which is part of its speed.

    .venv/bin/python bench/send.py [MESSAGES] [RUNS]
"""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from newsletter.config import Settings, SmtpSettings, StoreSettings
from newsletter.dispatch.delivery import DeliveryRun
from newsletter.dispatch.plan import Plan, build_plan
from newsletter.ingest import ingest_files, resolve_inputs
from newsletter.links import envelope_sender
from newsletter.models import Subscriber
from newsletter.store import Store
from newsletter.store.schema import deliveries

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DAY = ROOT.parent / "shared" / "corpus" / "daily-ai-papers" / "2025" / "01" / "30.md"
EXAMPLE_DAY = ROOT / "examples" / "digests" / "2026-11-19.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    sink = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Sink"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return sink
        except OSError:
            time.sleep(0.1)
    sink.kill()
    raise SystemExit("the aiosmtpd sink did not start")


def bare_loop(plan: Plan, prepared: list[bytes], port: int, sender: str) -> float:
    start = time.perf_counter()
    conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
    for planned, message in zip(plan.messages, prepared, strict=True):
        conn.sendmail(sender, [planned.subscriber.email], message)
    conn.quit()
    return time.perf_counter() - start


def delivery_run(store: Store, plan: Plan, smtp: SmtpSettings, sender: str) -> float:
    with store.engine.begin() as conn:  # every run starts from an empty log
        conn.execute(deliveries.delete())
    start = time.perf_counter()
    run = DeliveryRun(store, plan, smtp, sender)
    run.prepare()
    report = run.run()
    elapsed = time.perf_counter() - start
    if report.sent != len(plan.messages):
        raise SystemExit(f"delivery run sent {report.sent} of {len(plan.messages)}: {report.problems[:3]}")
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    day_file = CORPUS_DAY if CORPUS_DAY.is_file() else EXAMPLE_DAY
    folder = Path(tempfile.mkdtemp(prefix="bench-send-"))
    settings = Settings(path=folder / "config.toml", store=StoreSettings(url=f"sqlite:///{folder / 'bench.db'}"))
    port = free_port()
    sink = start_sink(port)
    try:
        with Store.from_settings(settings) as store:
            ingest_files(settings, store, resolve_inputs(settings, (str(day_file),)))
            store.upsert_subscribers([Subscriber(email=f"reader{i:05d}@example.com") for i in range(count)])
            date = store.latest_date()
            assert date is not None
            plan = build_plan(settings, store, date)
            prepared = [plan.message_bytes(m) for m in plan.messages]
            sizes = sorted(len(m) for m in prepared)
            median_kb = sizes[len(sizes) // 2] / 1024
            print(f"{len(prepared)} messages from {day_file.name} ({date}), median {median_kb:.1f} KB; "
                  f"aiosmtpd sink in a separate process; {runs} runs each, alternating")
            sender = envelope_sender(settings)
            contenders: dict[str, Callable[[], float]] = {
                "bare smtplib loop, prepared bytes": lambda: bare_loop(plan, prepared, port, sender),
                "newsletter delivery, 1 connection": lambda: delivery_run(
                    store, plan, SmtpSettings(host="127.0.0.1", port=port), sender),
                "newsletter delivery, 2 connections": lambda: delivery_run(
                    store, plan, SmtpSettings(host="127.0.0.1", port=port, connections=2), sender),
            }
            times: dict[str, list[float]] = {name: [] for name in contenders}
            for r in range(runs):
                order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
                for name in order:
                    times[name].append(contenders[name]())
    finally:
        sink.terminate()
        sink.wait()
    rates = {name: len(prepared) / statistics.median(t) for name, t in times.items()}
    baseline = rates["bare smtplib loop, prepared bytes"]
    for name, rate in rates.items():
        print(f"  {name:<38} {rate:8.1f} messages/s   ratio {rate / baseline:.2f}")
    print(f"checked on {dt.date.today()}: target ratio >= 0.9 for 1 connection")


if __name__ == "__main__":
    main()
