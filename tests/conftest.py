"""Shared test helpers: ``--update-golden``, golden comparison, and :func:`require_tool` for external programs."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every launcher a test starts serves its metrics on a free port of its own (tests run launchers side by side,
# and a helper session may run the suite twice at once); the metrics tests give explicit ports where they matter.
os.environ["FLOWC_METRICS_PORT"] = "0"


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


def in_ci() -> bool:
    """Return True when ``CI`` says this is a CI run (``true``, ``1`` or ``yes``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_tool(*names: str) -> str:
    """Return the path of the first of ``names`` on ``PATH``, or stop the calling test.

    A developer without the program gets a skip that names it; a CI run (``CI=true``) gets a failure instead,
    because ``.ci/run`` installs every such program and a skip there would hide a test that never ran.

    Args:
        names: Executable names to try, in order (``"chromium", "chromium-browser"``).

    Returns:
        The absolute path of the first one found.
    """
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    reason = f"{' or '.join(repr(n) for n in names)} is not installed"
    if in_ci():
        pytest.fail(f"{reason}; with CI=true this is an error, not a skip (.ci/run installs it)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 in a thread; yields the base URL, stops the server after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
