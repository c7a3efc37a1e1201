"""Every --json command run on the shipped config (README quick start): stdout and stderr in one
stream (`--json 2>&1 | jq`) are still one valid JSON document, with the config's example-domain
warning inside it rather than before it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from helpers import run
from newsletter.cli import cli
from shipped_project import shipped_project
from smtp_helpers import Recorder, smtp_server


def json_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= json_commands(command, (*prefix, name))
        elif any("--json" in option.opts for option in command.params if isinstance(option, click.Option)):
            found.add((*prefix, name))
    return found


def test_every_json_command_stays_valid_json_with_stderr_mixed_in(tmp_path: Path, store_backend: str) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("arxiv_id,primary,others,split\n2611.05120,Computer Vision,,test\n", encoding="utf-8")
    runs = {
        ("parse",): ["parse", "examples/digests"],
        ("ingest",): ["ingest"],
        ("feeds",): ["feeds"],
        ("categories", "eval"): ["categories", "eval", str(labels)],
        ("subscribers", "list"): ["subscribers", "list"],
        ("subscribers", "show"): ["subscribers", "show", "ada@example.org"],
        ("subscribers", "preview"): ["subscribers", "preview", "ada@example.org"],
        ("send",): ["send", "--plan-only"],
        ("status",): ["status"],
    }
    assert set(runs) == json_commands(cli), "a --json command this test does not run yet"
    with smtp_server(Recorder()) as server:
        config = shipped_project(tmp_path, server.port)
        outputs = {}
        for key, args in [*runs.items(), (("send", "for real"), ["send"])]:
            result = run(config, *args, "--json")
            assert result.exit_code == 0, (args, result.output)
            outputs[key] = json.loads(result.output)  # stdout and stderr, as the terminal shows them
    planned = outputs[("send",)]
    assert (planned["planned"], planned["due"], planned["warnings"]) == (5, 5, [])
    assert outputs[("send", "for real")]["sent"] == 5
    assert len(outputs[("subscribers", "list")]["subscribers"]) == 5
    for key, output in outputs.items():
        (warning,) = output["config_warnings"]
        assert "example domain" in warning, key


def test_parse_json_carries_the_digest_warnings_rather_than_stderr(tmp_path: Path) -> None:
    digest = tmp_path / "2026-11-21.md"
    digest.write_text("## Papers for 2026-11-21\n\n| Title | Authors | Summary |\n|---|---|---|\n"
                      "| A (Read more on [arXiv](https://arxiv.org/abs/2611.09001)) | A. B | Agents. |\n"
                      "| No link here | C. D | Text. |\n", encoding="utf-8")
    result = run(None, "parse", str(digest), "--json")
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.output)  # stdout and stderr, as the terminal shows them
    assert [paper["arxiv_id"] for paper in parsed["days"][0]["papers"]] == ["2611.09001"]
    (warning,) = parsed["warnings"]
    assert (warning["file"], warning["line"]) == (str(digest), 6) and "no arXiv link" in warning["message"]
