"""Progress output of the real CLI: on stderr only when it is a terminal, never mixed into --json."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run, write_config

pytestmark = pytest.mark.usefixtures("store_backend")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "digests"


def config_with_digests(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES, tmp_path / "digests")
    config = write_config(tmp_path)
    # An operator's own domain: stderr then carries progress only, not the example-domain warning.
    config.write_text(config.read_text(encoding="utf-8").replace("example.org", "ai-papers-digest.org"),
                      encoding="utf-8")
    return config


def newsletter(config: Path, *args: str, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), *args],
                          stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120, check=False)


def test_a_pipe_or_a_log_gets_no_progress_and_json_is_clean(tmp_path: Path) -> None:
    config = config_with_digests(tmp_path)
    plain = newsletter(config, "ingest")
    assert plain.returncode == 0, plain.stderr
    assert "Parsing" not in plain.stderr

    # stdout and stderr into one pipe, as `newsletter ingest --json 2>&1 | jq` does: still valid JSON.
    mixed = newsletter(config, "ingest", "--json", stderr=subprocess.STDOUT)
    assert mixed.returncode == 0, mixed.stdout
    assert json.loads(mixed.stdout)["days"] == 2


def run_with_terminal_stderr(config: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (what a person at a shell has), stdout on a pipe."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), *args],
                               stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the process closed its end of the terminal
            break
        if not chunk:
            break
        seen += chunk
    stdout = process.stdout.read() if process.stdout else ""
    os.close(controller)
    return process.wait(timeout=120), stdout, seen.decode(errors="replace")


def test_a_terminal_gets_progress_but_not_with_json(tmp_path: Path) -> None:
    config = config_with_digests(tmp_path)
    status, _stdout, terminal = run_with_terminal_stderr(config, "ingest")
    assert status == 0 and "Parsing" in terminal

    status, stdout, terminal = run_with_terminal_stderr(config, "ingest", "--json")
    assert status == 0
    assert "Parsing" not in terminal
    assert json.loads(stdout)["papers"]["unchanged"] > 0


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    config = config_with_digests(tmp_path)
    for extra in (tmp_path / "digests").iterdir():
        if extra.name != "2026-11-19.md":
            extra.unlink()
    one_paper = (tmp_path / "digests" / "2026-11-19.md").read_text(encoding="utf-8").splitlines()[:5]
    (tmp_path / "2026-11-18.md").write_text("\n".join(one_paper).replace("2026-11-19", "2026-11-18"), encoding="utf-8")
    parsed = run(config, "parse", str(tmp_path / "2026-11-18.md"))
    assert parsed.exit_code == 0 and parsed.stdout.startswith("2026-11-18    1 paper   "), parsed.stdout
    assert parsed.stdout.endswith("\n1 day, 1 paper\n")
    parsed = run(config, "parse", str(tmp_path / "digests"))
    assert parsed.exit_code == 0 and "\n1 day, " in parsed.stdout
    ingested = run(config, "ingest")
    assert ingested.exit_code == 0 and ingested.stdout.startswith("1 file, 1 day: "), ingested.stdout
    feeds = run(config, "feeds")
    assert feeds.exit_code == 0 and " over 1 day: " in feeds.stdout, feeds.stdout


def test_a_count_of_one_is_singular_in_a_plan_a_shrink_and_an_unread_day(tmp_path: Path) -> None:
    config = config_with_digests(tmp_path)
    digest = tmp_path / "digests" / "2026-11-19.md"
    lines = digest.read_text(encoding="utf-8").splitlines()
    for extra in (tmp_path / "digests").iterdir():
        if extra != digest:
            extra.unlink()
    assert run(config, "ingest").exit_code == 0
    assert run(config, "subscribers", "add", "ada@ai-papers-digest.org", "--category", "Multi-Modal").exit_code == 0
    planned = run(config, "send", "--plan-only")
    assert planned.stdout.startswith("Planned 2026-11-19: 1 message in 1 rendition, 1 due"), planned.stdout

    digest.write_text("\n".join(lines[:5]), encoding="utf-8")  # the day's 4 papers cut to 1
    shrunk = run(config, "ingest")
    assert shrunk.exit_code == 1 and "lists 1 paper for 2026-11-19 where the store holds 4" in shrunk.stderr

    digest.write_text("\n".join([*lines[:4], "| no link | A. B | C. |"]), encoding="utf-8")
    unread = run(config, "parse", str(digest))
    assert "none of the 1 paper listed for 2026-11-19 could be read" in unread.stderr, unread.stderr
    digest.write_text("\n".join(lines[:5]).replace("2026-11-19", "2026-02-30"), encoding="utf-8")  # no such day
    undated = run(config, "parse", str(digest))
    assert f"{digest}: nothing in this file could be read (see its 1 warning)" in undated.stderr, undated.stderr
