"""Route keys: ``flowc keys generate``, where nodes find them, what the emitters ask for, and what is refused."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import yaml
import zmq.auth
from click.testing import CliRunner

from flowc.cli import main
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source
from flowc.runtime.route_keys import CREDENTIALS_ENV, CurveKeys, RouteKeyError, keys_directory, load

from conftest import ROOT
from k8s_schema import VERSIONS, errors

MULTI_NODE = ROOT / "examples" / "multi-node.yaml"

THREE_NODES = """
actors:
  feed: {type: producer, outputs: [ticks]}
  west_sink: {type: consumer, inputs: [ticks]}
  east_sink: {type: consumer, inputs: [ticks]}
  audit: {type: consumer, inputs: [ticks]}
nodes:
  edge: {hostname: edge-1, actors: {feed: {cpu: [0]}}}
  west: {hostname: west-1, actors: {west_sink: {cpu: [0]}}}
  east: {hostname: east-1, actors: {east_sink: {cpu: [0]}}}
  lab: {hostname: lab-1, actors: {audit: {cpu: [0]}}}
inter_node:
  feed: {source: edge.ticks, targets: [west, east]}
  open_feed: {source: edge.ticks, targets: [lab], auth: none}
"""


def build(tmp: Path, text: str | None = None) -> Path:
    """Build a document (the multi-node example by default) into ``tmp/out``; the output folder."""
    source = MULTI_NODE
    if text is not None:
        source = tmp / "routes.yaml"
        source.write_text(text)
    result = CliRunner().invoke(main, ["build", str(source), "-o", str(tmp / "out")])
    assert result.exit_code == 0, result.output
    return tmp / "out"


def generate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["keys", "generate", *args])
    return result.exit_code, result.output


def test_each_node_gets_its_keypair_and_its_peers_public_keys(tmp_path: Path) -> None:
    out = build(tmp_path, THREE_NODES)
    code, output = generate(str(out), "-o", str(tmp_path / "keys"))
    assert code == 0, output
    keys = tmp_path / "keys"
    index = json.loads((keys / "keys.json").read_text())
    # 'lab' only has the unauthenticated route: it needs no keys; 'edge' trusts both targets, each target 'edge'.
    assert index["nodes"] == {"edge": ["east.key", "edge.key_secret", "west.key"],
                              "east": ["east.key_secret", "edge.key"], "west": ["edge.key", "west.key_secret"]}
    public = {node: zmq.auth.load_certificate(keys / node / f"{node}.key_secret") for node in index["nodes"]}
    for node, files in index["nodes"].items():
        own_public, own_secret = public[node]
        assert own_secret is not None and zmq.curve_public(own_secret) == own_public
        for name in files:
            if name.endswith(".key"):
                assert zmq.auth.load_certificate(keys / node / name) == (public[name[:-4]][0], None)
    assert len({pair[0] for pair in public.values()}) == 3, "every node has a keypair of its own"


def test_secret_files_are_private_and_the_folder_too(tmp_path: Path) -> None:
    out = build(tmp_path)
    assert generate(str(out / "flowc" / "plan.json"), "-o", str(tmp_path / "keys"))[0] == 0
    keys = tmp_path / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for path in keys.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name.endswith("_secret") or path.parent.name == "kubernetes":
            assert mode == 0o600, path
        if path.is_dir():
            assert mode & 0o077 == 0, path


def test_the_secrets_validate_and_match_what_the_deployments_mount(tmp_path: Path) -> None:
    out = build(tmp_path)
    code, output = generate(str(out), "-o", str(tmp_path / "keys"), "-n", "trading")
    assert code == 0, output
    for secret_file in sorted((tmp_path / "keys" / "kubernetes").iterdir()):
        secret = yaml.safe_load(secret_file.read_text())
        for version in VERSIONS:
            assert errors(secret, version) == []
        node = secret["metadata"]["labels"]["app.kubernetes.io/instance"].replace("-", "_")
        assert secret["metadata"]["namespace"] == "trading"
        for name, data in secret["data"].items():
            assert base64.b64decode(data) == (tmp_path / "keys" / node / name).read_bytes()
        deployment = yaml.safe_load((out / f"deployment-{node.replace('_', '-')}.yaml").read_text())
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert {"name": "route-keys", "secret": {"secretName": secret["metadata"]["name"], "defaultMode": 0o400}} \
            in volumes


def test_the_build_output_holds_no_key_and_never_changes_with_keys(tmp_path: Path) -> None:
    out = build(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert generate(str(out), "-o", str(tmp_path / "keys"))[0] == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    secrets = [zmq.auth.load_certificate(p)[1] for p in (tmp_path / "keys").rglob("*.key_secret")]
    publics = [zmq.auth.load_certificate(p)[0] for p in (tmp_path / "keys").rglob("*.key_secret")]
    for content in before.values():
        assert b"secret-key" not in content
        assert not any(key in content for key in secrets + publics)


def test_keys_are_refused_inside_a_build_output_and_over_other_folders(tmp_path: Path) -> None:
    out = build(tmp_path)
    code, output = generate(str(out), "-o", str(out / "keys"))
    assert code == 1 and "error[FLC502]" in output and "is inside the build output" in output
    assert not (out / "keys").exists()
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, output = generate(str(out), "-o", str(foreign), "--force")
    assert code == 1 and "was not written by 'flowc keys generate'" in output
    assert (foreign / "notes.txt").read_text() == "mine"


def test_existing_keys_are_replaced_only_with_force(tmp_path: Path) -> None:
    out = build(tmp_path)
    keys = tmp_path / "keys"
    assert generate(str(out), "-o", str(keys))[0] == 0
    first = (keys / "data_node" / "data_node.key_secret").read_bytes()
    code, output = generate(str(out), "-o", str(keys))
    assert code == 1 and "already holds keys" in output and "--force" in output
    assert (keys / "data_node" / "data_node.key_secret").read_bytes() == first
    assert generate(str(out), "-o", str(keys), "--force")[0] == 0
    assert (keys / "data_node" / "data_node.key_secret").read_bytes() != first, "fresh keys every run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys", "out"], "no staging folder is left behind"


def test_a_plan_without_authenticated_routes_needs_no_keys(tmp_path: Path) -> None:
    out = build(tmp_path, THREE_NODES.replace("targets: [west, east]}", "targets: [west, east], auth: none}"))
    code, output = generate(str(out), "-o", str(tmp_path / "keys"))
    assert code == 0 and "nothing to write" in output and not (tmp_path / "keys").exists()


def test_a_node_slice_or_junk_is_not_a_whole_plan(tmp_path: Path) -> None:
    out = build(tmp_path)
    code, output = generate(str(out / "systemd" / "data_node" / "plan.json"), "-o", str(tmp_path / "keys"))
    assert code == 1 and "is not a whole flowc plan" in output and "Traceback" not in output
    junk = tmp_path / "junk.json"
    junk.write_text("[" * 100_000)
    code, output = generate(str(junk), "-o", str(tmp_path / "keys"))
    assert code == 1 and "is not a whole flowc plan" in output


def test_nodes_find_their_folder_in_the_whole_output_or_their_own(tmp_path: Path) -> None:
    out = build(tmp_path)
    keys = tmp_path / "keys"
    assert generate(str(out), "-o", str(keys))[0] == 0
    whole = keys_directory("data_node", {"FLOWC_KEYS_DIR": str(keys)})
    own = keys_directory("data_node", {"FLOWC_KEYS_DIR": str(keys / "data_node")})
    credentials = keys_directory("data_node", {CREDENTIALS_ENV: str(keys / "data_node")})
    assert whole == own == credentials == keys / "data_node"
    assert keys_directory("data_node", {}) is None
    sender = load(keys / "data_node", "data_node", "strategy_node")
    receiver = load(keys / "strategy_node", "strategy_node", "data_node")
    assert sender.peer == receiver.public and receiver.peer == sender.public
    assert "secret" not in repr(sender) and sender.secret.decode() not in repr(sender)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """One node's folder: ``a.key_secret`` (0600) and ``b.key``."""
    zmq.auth.create_certificates(tmp_path, "a")
    zmq.auth.create_certificates(tmp_path, "b")
    (tmp_path / "a.key_secret").chmod(0o600)
    return tmp_path


def test_keys_loaded_for_a_route(folder: Path) -> None:
    keys = load(folder, "a", "b")
    assert isinstance(keys, CurveKeys)
    assert keys.peer == zmq.auth.load_certificate(folder / "b.key")[0]


@pytest.mark.parametrize("damage", ["world-readable", "group-writable", "missing-peer", "no-secret", "not-a-pair",
                                    "garbage", "directory"])
def test_keys_that_cannot_be_trusted_are_refused(folder: Path, damage: str) -> None:
    secret = folder / "a.key_secret"
    if damage == "world-readable":
        secret.chmod(0o644)
    elif damage == "group-writable":
        secret.chmod(0o620)
    elif damage == "missing-peer":
        (folder / "b.key").unlink()
    elif damage == "no-secret":
        os.replace(folder / "a.key", secret)
        secret.chmod(0o600)
    elif damage == "not-a-pair":
        text = secret.read_text()
        other = zmq.auth.load_certificate(folder / "b.key_secret")[1].decode()
        mine = zmq.auth.load_certificate(secret)[1].decode()
        secret.write_text(text.replace(mine, other))
    elif damage == "garbage":
        secret.write_text('curve\n    public-key = "short"\n    secret-key = "short"\n')
    else:
        secret.unlink()
        secret.mkdir()
    with pytest.raises(RouteKeyError):
        load(folder, "a", "b")


def test_unauthenticated_routes_warn_and_ask_for_no_keys() -> None:
    result = compile_source(THREE_NODES, "routes.yaml", until="artifacts", options=BuildOptions())
    warnings = [d for d in result.diagnostics if d.code == "FLC403"]
    assert len(warnings) == 1 and "'open_feed' is not authenticated" in warnings[0].message
    assert (warnings[0].span.line, warnings[0].span.col) == (14, 57), "points at the value of 'auth'"
    files = {a.path: a.content.decode() for a in result.artifacts}
    lab = yaml.safe_load(files["deployment-lab.yaml"])
    assert "route-keys" not in json.dumps(lab), "a node with only unauthenticated routes mounts no keys"
    west = yaml.safe_load(files["deployment-west.yaml"])
    assert {"name": "FLOWC_KEYS_DIR", "value": "/etc/flowc-keys"} in west["spec"]["template"]["spec"][
        "containers"][0]["env"]
    lab_unit = files["systemd/lab/flowc-routes-route-open_feed-in-0.service"]
    assert "LoadCredential" not in lab_unit
    west_unit = files["systemd/west/flowc-routes-route-feed-in-0.service"]
    assert "LoadCredential=west.key_secret:/etc/flowc/routes/keys/west.key_secret\n" in west_unit
    assert "LoadCredential=edge.key:/etc/flowc/routes/keys/edge.key\n" in west_unit
