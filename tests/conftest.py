"""Shared pytest options: ``--update-golden`` rewrites golden files instead of comparing them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden expectations")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def compare_or_update(path: Path, actual: str | bytes, update: bool) -> None:
    """Assert that ``path`` holds ``actual``, or write it when updating."""
    data = actual.encode() if isinstance(actual, str) else actual
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"missing golden file {path}; run pytest --update-golden and review the diff"
    expected = path.read_bytes()
    if isinstance(actual, str):
        assert actual == expected.decode(), f"{path} differs; run pytest --update-golden and review the diff"
    else:
        assert data == expected, f"{path} differs; run pytest --update-golden and review the diff"
