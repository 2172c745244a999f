"""Each fast path has a fallback for a machine without its compiled library, with the same results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowc.model.json_text as json_text
import flowc.passes.check_schema as check_schema
import flowc.passes.parse_fast as parse_fast
from flowc.model.context import Context
from flowc.passes.parse import parse

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multi-node.yaml"


def _parsed(text: str) -> tuple:
    ctx = Context("t.yaml")
    doc = parse(text, ctx)
    return doc.data, list(doc.value_spans.items()), list(doc.key_spans.items()), doc.plain, ctx.diagnostics


def test_without_libyaml_the_reference_parser_gives_the_same_document(monkeypatch: pytest.MonkeyPatch) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert parse_fast.parse_fast(text, "t.yaml") is not None
    fast = _parsed(text)
    monkeypatch.setattr(parse_fast, "CParser", None)
    assert parse_fast.parse_fast(text, "t.yaml") is None
    assert _parsed(text) == fast


def test_without_jsonschema_rs_jsonschema_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    valid = parse(EXAMPLE.read_text(encoding="utf-8"), Context("t.yaml")).data
    invalid = {**valid, "nodes": 3}
    monkeypatch.setattr(check_schema, "_screen", lambda: None)
    assert check_schema.schema_errors(valid) == []
    assert [error.validator for error in check_schema.schema_errors(invalid)] == ["type"]


@pytest.mark.parametrize("data", [{"b": [1, 2.5, None], "a": "é"}, {"big": 10**30, "tiny": 1e-7}, []])
def test_without_orjson_the_standard_library_writes_the_same_bytes(data: object,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fast = json_text.pretty(data)
    monkeypatch.setattr(json_text, "orjson", None)
    assert json_text.pretty(data) == fast == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
