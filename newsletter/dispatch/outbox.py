"""The dry-run outbox: what a send would deliver, written as plan.json, .eml files and an index.html
that previews each rendition side by side."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from newsletter import render
from newsletter.dispatch.plan import Plan
from newsletter.errors import NewsletterError


@dataclass
class OutboxReport:
    folder: Path
    plan_file: Path
    index_file: Path | None
    written: int
    sampled: bool


def _file_safe(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]+", "_", text)[:limit].strip("._") or "x"


def write_outbox(plan: Plan, outbox: Path, sample_threshold: int,
                 on_message: Callable[[int], None] | None = None) -> OutboxReport:
    """Write what a send would deliver into ``outbox/DATE/``: plan.json, .eml files, index.html.

    At most ``sample_threshold`` recipients get one .eml each; above it, the first recipient of each
    rendition stands in as its sample. Files of an earlier dry run for the same date are removed
    first, so the folder shows exactly this plan.
    """
    folder = outbox / plan.date.isoformat()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.eml"):
            old.unlink()
        shutil.rmtree(folder / "renditions", ignore_errors=True)
        for stale in (folder / "index.html", folder / "plan.json"):
            stale.unlink(missing_ok=True)
        sampled = len(plan.messages) > sample_threshold
        files: list[str | None] = []
        sampled_keys: set[str] = set()
        for position, planned in enumerate(plan.messages, start=1):
            name = None
            if not sampled:
                name = f"{position:06d}-{_file_safe(planned.subscriber.email)}.eml"
            elif planned.rendition_key not in sampled_keys:
                sampled_keys.add(planned.rendition_key)
                number = plan.rendition_number(planned.rendition_key)
                name = f"sample-{number:03d}-{_file_safe(planned.rendition_key)}.eml"
            if name is not None:
                (folder / name).write_bytes(plan.message_bytes(planned))
            files.append(name)
            if on_message is not None:
                on_message(1)
        index_file = _write_index(plan, folder) if plan.renditions else None
        document = {
            "date": plan.date.isoformat(),
            "messages": [
                {"to": m.subscriber.email, "papers": list(m.papers), "file": f, "edition": m.edition.as_dict(),
                 "reasons": plan.renditions[m.rendition_key].reasons_for(m)}
                for m, f in zip(plan.messages, files, strict=True)
            ],
            "skipped": [{"to": s.email, "reason": s.reason} for s in plan.skipped],
        }
        plan_file = folder / "plan.json"
        plan_file.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(f"cannot write the outbox {folder}: {exc.strerror or exc}",
                              "check [email] outbox or --outbox, and that the folder is writable") from exc
    return OutboxReport(folder, plan_file, index_file, sum(f is not None for f in files), sampled)


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
