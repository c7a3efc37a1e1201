"""The dry-run outbox: what a send would deliver, written as plan.json, .eml files and an index.html
that previews each rendition side by side."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from newsletter import render
from newsletter.clock import utc_now
from newsletter.dispatch.plan import Plan
from newsletter.errors import NewsletterError
from newsletter.models import PlannedMessage
from newsletter.store import Store

Logged = Mapping[tuple[str, int], str]
"""(edition key, subscriber id) -> delivery-log state, for the planned messages a send would not deliver now."""


@dataclass
class OutboxReport:
    folder: Path
    plan_file: Path
    index_file: Path | None
    written: int
    sampled: bool
    left_out: Counter[str] = field(default_factory=Counter)
    """Delivery-log state -> how many planned messages a send would not deliver now (already sent, ...)."""
    planned: int = 0

    @property
    def going_out(self) -> int:
        return self.planned - sum(self.left_out.values())


def logged_states(store: Store, plan: Plan) -> Logged:
    """What the delivery log says of the plan's messages that a send would not deliver now."""
    return store.logged_states(list(plan.editions), utc_now())


def log_state(planned: PlannedMessage, logged: Logged) -> str | None:
    """The message's delivery-log state when a send would not deliver it now; None when it would."""
    subscriber_id = planned.subscriber.id
    return None if subscriber_id is None else logged.get((planned.edition.key, subscriber_id))


def _file_safe(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]+", "_", text)[:limit].strip("._") or "x"


def write_outbox(plan: Plan, outbox: Path, sample_threshold: int,
                 on_message: Callable[[int], None] | None = None, logged: Logged | None = None) -> OutboxReport:
    """Write what a send would deliver into ``outbox/DATE/``: plan.json, .eml files, index.html.

    A planned message the delivery log shows as already handled (``logged``: sent, failed, held by
    another send, ...) gets no .eml: the files are exactly what a send would deliver now; plan.json
    lists it with ``"goes_out": false`` and its ``"log_state"``. At most ``sample_threshold``
    messages going out get one .eml each; above it, the first recipient of each rendition stands in
    as its sample. Files of an earlier dry run for the same date are removed first, so the folder
    shows exactly this plan.
    """
    logged = logged or {}
    states = [log_state(planned, logged) for planned in plan.messages]
    folder = outbox / plan.date.isoformat()
    try:
        _clear_earlier_run(folder)
        sampled = states.count(None) > sample_threshold
        files = _write_messages(plan, folder, states, sampled, on_message)
        index_file = _write_index(plan, folder) if plan.renditions else None
        plan_file = folder / "plan.json"
        document = _plan_document(plan, files, states)
        plan_file.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the outbox {folder}: {exc.strerror or exc}",
                              "check [email] outbox or --outbox, and that the folder is writable") from exc
    return OutboxReport(folder, plan_file, index_file, sum(f is not None for f in files), sampled,
                        Counter(state for state in states if state is not None), len(plan.messages))


def _clear_earlier_run(folder: Path) -> None:
    """Create ``folder``, or remove what an earlier dry run for the same date wrote in it."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.eml"):
        old.unlink()
    shutil.rmtree(folder / "renditions", ignore_errors=True)
    for stale in (folder / "index.html", folder / "plan.json"):
        stale.unlink(missing_ok=True)


def _write_messages(plan: Plan, folder: Path, states: list[str | None], sampled: bool,
                    on_message: Callable[[int], None] | None) -> list[str | None]:
    """Write the .eml files; return each planned message's file name (None: no file)."""
    files: list[str | None] = []
    sampled_keys: set[str] = set()
    for position, (planned, state) in enumerate(zip(plan.messages, states, strict=True), start=1):
        name = None  # a message not going out now gets no file
        if state is None and not sampled:
            name = f"{position:06d}-{_file_safe(planned.subscriber.email)}.eml"
        elif state is None and planned.rendition_key not in sampled_keys:
            sampled_keys.add(planned.rendition_key)
            number = plan.rendition_number(planned.rendition_key)
            name = f"sample-{number:03d}-{_file_safe(planned.rendition_key)}.eml"
        if name is not None:
            (folder / name).write_bytes(plan.message_bytes(planned))
        files.append(name)
        if on_message is not None:
            on_message(1)
    return files


def _plan_document(plan: Plan, files: list[str | None], states: list[str | None]) -> dict[str, object]:
    """plan.json's content: every planned message, whether it goes out now and its file, and the skipped."""
    return {
        "date": plan.date.isoformat(),
        "messages": [
            {"to": m.subscriber.email, "papers": list(m.papers), "file": f, "edition": m.edition.as_dict(),
             "reasons": plan.renditions[m.rendition_key].reasons_for(m), "goes_out": state is None,
             "log_state": state}
            for m, f, state in zip(plan.messages, files, states, strict=True)
        ],
        "skipped": [{"to": s.email, "reason": s.reason} for s in plan.skipped],
    }


def _write_index(plan: Plan, folder: Path) -> Path:
    """One preview file per rendition, shown side by side in index.html (no scripts)."""
    (folder / "renditions").mkdir()
    previews = []
    recipients = plan.recipients_per_rendition()
    for key, rendition in plan.renditions.items():
        number = plan.rendition_number(key)
        file_name = f"renditions/{number:03d}-{_file_safe(key)}.html"
        (folder / file_name).write_text(rendition.preview_html(), encoding="utf-8")
        previews.append({"key": key, "file": file_name, "papers": len(rendition.papers),
                         "recipients": recipients.get(key, 0), "description": rendition.describe(),
                         "html_kb": rendition.template.html_part_bytes / 1024})
    index = folder / "index.html"
    index.write_text(render.render_page("outbox_index.html", date=plan.date, previews=previews,
                                        skipped=len(plan.skipped), warnings=plan.warnings), encoding="utf-8")
    return index
