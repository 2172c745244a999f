"""``flowc check`` as a CI gate: folders, ``--ignore``, inline ``# flowc: ignore[CODE]`` and unused suppressions."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from flowc.cli import main

DOC = """actors:
  feed: {type: producer, outputs: [ticks, extra], run: "flowc.actors:synthetic_producer"}LINE2
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  n:
    hostname: localhost
    actors: {feed: {cpu: [0]}, sink: {cpu: [1]}}
"""


def check(*args: str) -> tuple[int, list[dict], str]:
    """Run ``flowc check --format json`` and return the exit code, the diagnostics and stderr."""
    result = CliRunner().invoke(main, ["check", "--format", "json", *args])
    return result.exit_code, json.loads(result.stdout or "[]") if result.stdout.strip() else [], result.stderr


def write(path: Path, comment: str = "") -> Path:
    """Write the document (its line 2 raises FLC302, output 'extra' has no consumer) with ``comment`` on line 2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DOC.replace("LINE2", comment))
    return path


def codes(diagnostics: list[dict]) -> list[str]:
    """The codes, in order."""
    return [d["code"] for d in diagnostics]


def test_a_folder_is_checked_file_by_file(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml")
    write(tmp_path / "nested" / "b.yml")
    write(tmp_path / ".hidden" / "c.yaml")
    (tmp_path / "notes.txt").write_text("not a document")
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 0
    assert "0 errors, 2 warnings in 2 files" in result.stderr
    found = check(str(tmp_path))[1]
    assert sorted(Path(d["span"]["path"]).name for d in found) == ["a.yaml", "b.yml"]


def test_repeated_codes_are_grouped_in_text_and_listed_in_json(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.yaml")
    text = CliRunner().invoke(main, ["check", str(tmp_path)]).stdout.splitlines()
    a, b, c = (str(tmp_path / f"{name}.yaml") for name in "abc")
    assert text == [
        f"{a}:2:43: warning[FLC302] output channel 'extra' of 'feed' has no consumer",
        "  help: add it to the 'inputs' of a consumer, or remove it",
        "  and 2 more FLC302 (output channel without a consumer):",
        f"    {b}:2:43: warning output channel 'extra' of 'feed' has no consumer",
        f"    {c}:2:43: warning output channel 'extra' of 'feed' has no consumer",
    ]
    assert [d["span"]["path"] for d in check(str(tmp_path))[1]] == [a, b, c]


def test_ignore_drops_a_code_everywhere(tmp_path: Path) -> None:
    doc = write(tmp_path / "a.yaml")
    assert codes(check(str(doc))[1]) == ["FLC302"]
    assert check(str(doc), "--ignore", "flc302")[1] == []
    exit_code, _, err = check(str(doc), "--ignore", "FLC3")
    assert exit_code == 2 and "'FLC3' is not a diagnostic code" in err


def test_an_inline_comment_drops_what_its_line_reports(tmp_path: Path) -> None:
    doc = write(tmp_path / "a.yaml", "  # flowc: ignore[FLC302]")
    assert check(str(doc))[1] == []
    assert check(str(doc), "--strict")[0] == 0  # the suppression was used: nothing to report


def test_an_unused_suppression_is_reported_under_strict(tmp_path: Path) -> None:
    doc = write(tmp_path / "a.yaml", "  # flowc: ignore[FLC302, FLC401]")
    assert check(str(doc))[0] == 0
    exit_code, found, _ = check(str(doc), "--strict")
    assert exit_code == 1
    assert [(d["code"], d["message"], d["span"]["line"]) for d in found] == [
        ("FLC001", "unused suppression of FLC401", 2)]


def test_a_comment_on_another_line_suppresses_nothing(tmp_path: Path) -> None:
    doc = write(tmp_path / "a.yaml")
    doc.write_text(doc.read_text().replace("nodes:", "nodes:  # flowc: ignore[FLC302]"))
    assert codes(check(str(doc))[1]) == ["FLC302"]
