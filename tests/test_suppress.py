"""``flowc check`` as a CI gate: folders, ``--ignore``, a document's list, inline comments, unused suppressions.

A document's list is its top-level ``flowc: {ignore: [CODE]}``; an inline comment is ``# flowc: ignore[CODE]``.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from flowc.cli import main
from flowc.data import schema
from flowc.diagnostics.codes import CODES
from flowc.pipeline import compile_source

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


def listing(path: Path, *ignored: str, comment: str = "") -> Path:
    """Write the document with ``flowc: {ignore: [IGNORED]}`` on its first two lines (its FLC302 moves to line 4)."""
    write(path, comment)
    path.write_text(f"flowc:\n  ignore: [{', '.join(ignored)}]\n" + path.read_text())
    return path


def test_a_document_list_drops_its_codes_in_that_document_only(tmp_path: Path) -> None:
    listing(tmp_path / "a.yaml", "FLC302")
    write(tmp_path / "b.yaml")
    exit_code, found, _ = check(str(tmp_path), "--strict")
    assert exit_code == 1
    assert [(Path(d["span"]["path"]).name, d["code"]) for d in found] == [("b.yaml", "FLC302")]
    assert check(str(tmp_path / "a.yaml"), "--strict")[:2] == (0, [])


def test_an_unknown_code_in_the_list_is_an_error_at_its_entry(tmp_path: Path) -> None:
    doc = listing(tmp_path / "a.yaml", "FLC302", "flc504", "FLC999")
    exit_code, found, _ = check(str(doc))
    assert exit_code == 1
    assert [(d["code"], d["span"]["line"], d["span"]["col"], d["help"]) for d in found] == [
        ("FLC203", 2, 20, "did you mean 'FLC504'?"), ("FLC203", 2, 28, "did you mean 'FLC339'?")]


def test_an_unused_list_entry_is_reported_under_strict_at_the_entry(tmp_path: Path) -> None:
    doc = listing(tmp_path / "a.yaml", "FLC302", "FLC401")
    assert check(str(doc))[:2] == (0, [])
    exit_code, found, _ = check(str(doc), "--strict")
    assert exit_code == 1
    assert [(d["code"], d["message"], d["span"]["line"], d["span"]["col"]) for d in found] == [
        ("FLC001", "unused suppression of FLC401", 2, 20)]
    assert "flowc: ignore" in found[0]["help"]


def test_the_list_applies_when_an_error_ends_the_check(tmp_path: Path) -> None:
    doc = listing(tmp_path / "a.yaml", "FLC302", "FLC401")
    doc.write_text(doc.read_text().replace("inputs: [ticks]", "inputs: [ticks, nothing]"))
    exit_code, found, _ = check(str(doc), "--strict")
    assert exit_code == 1
    assert [(d["code"], d["span"]["line"]) for d in found] == [("FLC301", 5), ("FLC001", 2)]


def test_suppressions_naming_one_diagnostic_are_all_used(tmp_path: Path) -> None:
    doc = listing(tmp_path / "a.yaml", "FLC302", comment="  # flowc: ignore[FLC302]")
    assert check(str(doc), "--strict")[:2] == (0, [])
    assert check(str(write(tmp_path / "b.yaml", "  # flowc: ignore[FLC302]")), "--strict", "--ignore", "FLC302")[:2] \
        == (0, [])


def test_the_list_changes_nothing_a_build_writes(tmp_path: Path) -> None:
    plain = write(tmp_path / "a.yaml").read_text()
    listed = listing(tmp_path / "a.yaml", "FLC302", "FLC504").read_text()
    built = [compile_source(text, "a.yaml", until="artifacts") for text in (plain, listed)]
    assert all(result.ok for result in built)
    assert [(a.path, a.content) for a in built[0].artifacts] == [(a.path, a.content) for a in built[1].artifacts]


def test_the_schema_lists_every_registered_code() -> None:
    ignore = schema()["$defs"]["flowc"]["properties"]["ignore"]
    assert ignore["items"]["enum"] == sorted(CODES)
