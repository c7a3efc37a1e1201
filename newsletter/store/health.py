"""How digest files held up when parsed (drift counts per file) and the last ingests' summaries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, delete, select

from newsletter.clock import utc_now
from newsletter.models import FileHealth
from newsletter.store.schema import ingest_runs, source_health

RUNS_KEPT = 50


def _health(row: Any) -> FileHealth:
    return FileHealth(row.path, row.format, line=row.line, blocks=row.blocks, papers=row.papers, size=row.size,
                      drift=dict(row.drift))


class HealthStore:
    engine: Engine

    def record_health(self, files: Mapping[str, FileHealth], now: dt.datetime | None = None) -> None:
        """Store each file's health by its source key, replacing what its last parse gave."""
        rows = [
            {"path": path, "format": f.format, "line": f.line, "blocks": f.blocks, "papers": f.papers,
             "size": f.size, "drift": dict(f.drift), "recorded_at": now or utc_now()}
            for path, f in files.items()
        ]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(delete(source_health).where(source_health.c.path.in_([r["path"] for r in rows])))
            conn.execute(source_health.insert(), rows)

    def file_health(self) -> dict[str, FileHealth]:
        """Every file's health as last recorded, by source key (``file`` is the key too)."""
        with self.engine.connect() as conn:
            return {row.path: _health(row) for row in conn.execute(select(source_health))}

    def record_ingest_run(self, summary: dict[str, Any], now: dt.datetime | None = None) -> None:
        """Keep an ingest's summary; only the last RUNS_KEPT are kept."""
        with self.engine.begin() as conn:
            conn.execute(ingest_runs.insert().values(finished_at=now or utc_now(), summary=summary))
            cutoff = conn.execute(
                select(ingest_runs.c.id).order_by(ingest_runs.c.id.desc()).offset(RUNS_KEPT).limit(1)
            ).scalar_one_or_none()
            if cutoff is not None:
                conn.execute(delete(ingest_runs).where(ingest_runs.c.id <= cutoff))

    def last_ingest_run(self) -> tuple[dt.datetime, dict[str, Any]] | None:
        """(when it finished, its summary) of the newest ingest, or None before the first."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ingest_runs.c.finished_at, ingest_runs.c.summary).order_by(ingest_runs.c.id.desc()).limit(1)
            ).first()
        return None if row is None else (row.finished_at, dict(row.summary))
