"""Sending one day's issue: the one entry point that `newsletter send` and the publish pipeline share.

``DaySend`` builds the day's plan, records its messages in the delivery log (``prepare``) and delivers
what is due over [smtp] (``deliver``); the log makes a rerun continue where a run stopped, and its
leases keep two sends from mailing anyone twice. The callers add only what is theirs: progress and
exit codes for the CLI, no-issue notes and rechecks for the pipeline.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from newsletter.config import Settings
from newsletter.dispatch.delivery import DeliveryReport, DeliveryRun
from newsletter.dispatch.plan import build_plan
from newsletter.links import envelope_sender
from newsletter.store import Store


class DaySend:
    """One send of ``date`` (default: today); ``stop()``, from any thread, ends it after the message in flight."""

    def __init__(self, settings: Settings, store: Store, date: dt.date | None = None,
                 without_digest: bool = False) -> None:
        """``without_digest``: a day without a digest still sends its weekly editions (see build_plan)."""
        self.settings = settings
        self.store = store
        self.plan = build_plan(settings, store, date, without_digest=without_digest)
        self._run: DeliveryRun | None = None
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def date(self) -> dt.date:
        return self.plan.date

    @property
    def run(self) -> DeliveryRun:
        assert self._run is not None, "prepare() first"
        return self._run

    @property
    def report(self) -> DeliveryReport:
        return self.run.report

    def prepare(self) -> int:
        """Record the plan's messages in the delivery log (rows already there are kept); how many are due now.

        The SMTP password is read here, not before: a day that sends nothing needs none."""
        run = DeliveryRun(self.store, self.plan, self.settings.smtp, envelope_sender(self.settings))
        with self._lock:
            self._run = run
            stopped = self._stopped
        if stopped:
            run.stop()
        return run.prepare()

    def deliver(self, on_message: Callable[[str], None] | None = None) -> DeliveryReport:
        """Send what ``prepare`` found due (nothing when none was); the report."""
        return self.run.run(on_message=on_message) if self.report.due else self.report

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            run = self._run
        if run is not None:
            run.stop()
