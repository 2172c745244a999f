"""``flowc build --resolve``: bid names become Mithril ids through a real (local) HTTP API."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from click.testing import CliRunner

from flowc.cli import main

from conftest import serve_http

ROUTES = {
    "/v2/projects": [{"fid": "proj_123", "name": "research", "created_at": "2026-01-01T00:00:00Z"}],
    "/v2/instance-types": [{"fid": "it_h100_b", "name": "h100-80gb.sxm.8x", "num_gpus": 8, "gpu_type": "H100"},
                           {"fid": "it_h100_a", "name": "h100-80gb.sxm.8x", "num_gpus": 8, "gpu_type": "H100"}],
    "/v2/spot/availability": [
        {"fid": "auc_1", "instance_type": "it_h100_a", "region": "us-central1-a", "capacity": 4,
         "last_instance_price": "$20.00"},
        {"fid": "auc_2", "instance_type": "it_h100_b", "region": "us-central1-b", "capacity": 2,
         "last_instance_price": "$21.00"}],
    "/v2/ssh-keys": [{"fid": "sshkey_9", "name": "ops", "project": "proj_123"}],
    "/v2/volumes": [{"fid": "vol_7", "name": "ckpts", "region": "us-central1-b"}],
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch):
    seen: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            seen.append((url.path, parse_qs(url.query)))
            body = json.dumps(ROUTES.get(url.path, {"detail": "not found"})).encode()
            self.send_response(200 if url.path in ROUTES else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler) as url:
        monkeypatch.setenv("MITHRIL_API_URL", url)
        monkeypatch.setenv("MITHRIL_API_KEY", "secret-key-123")
        yield seen


def test_resolve_turns_names_into_ids(api, tmp_path: Path) -> None:
    source = tmp_path / "t.yaml"
    source.write_text("name: t\ninstance_type: 8xh100\nregion: us-central1-b\nssh_keys: [ops]\n"
                      "volumes: [{name: ckpts, interface: file}]\nmithril: {project: research}\n")
    result = CliRunner().invoke(main, ["build", str(source), "-o", str(tmp_path / "out"), "--resolve"])
    assert result.exit_code == 0, result.output
    body = json.loads((tmp_path / "out" / "mithril" / "t.json").read_text())
    assert body["project"] == "proj_123"
    assert body["instance_type"] == "it_h100_b", "the id offered in the bid's region"
    assert body["launch_specification"]["ssh_keys"] == ["sshkey_9"]
    assert body["launch_specification"]["volumes"] == ["vol_7"]
    assert ("/v2/ssh-keys", {"project": ["proj_123"]}) in api
    assert "secret-key-123" not in result.output


def test_unknown_name_is_a_diagnostic(api, tmp_path: Path) -> None:
    source = tmp_path / "t.yaml"
    source.write_text("name: t\ninstance_type: 8xh100\nregion: eu-central1-a\nmithril: {project: research}\n")
    result = CliRunner().invoke(main, ["build", str(source), "-o", str(tmp_path / "out"), "--resolve"])
    assert result.exit_code == 1
    assert "error[FLC514]" in result.output and "not offered in eu-central1-a" in result.output
    assert not (tmp_path / "out").exists()
