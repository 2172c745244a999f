"""Mithril bid bodies: valid for the API's CreateBidRequest, honest about their choices, safe scripts."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

from flowc.emit.mithril.script import PLAIN_LIMIT, compress_script, render_script
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source

from conftest import ROOT

SCHEMA = json.loads((ROOT / "tests" / "schemas" / "mithril-create-bid.json").read_text())
SOURCES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "tests" / "golden").glob("*/input.yaml"))


def sandbox(tmp_path: Path) -> dict[str, str]:
    """The environment a startup script runs in here: its log in ``tmp_path``, not on this machine."""
    return {**os.environ, "FLOWC_LOG_DIR": str(tmp_path / "log")}


def bids(text: str, **options: str) -> tuple[dict[str, dict], list]:
    result = compile_source(text, "t.yaml", environ={}, until="artifacts",
                            options=BuildOptions(target_options={"mithril": options}))
    assert result.artifacts is not None, result.diagnostics
    return ({a.path[len("mithril/"):-5]: json.loads(a.content) for a in result.artifacts
             if a.path.startswith("mithril/") and a.path.endswith(".json")}, result.diagnostics)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_bid_validates_and_its_script_parses(source: Path, tmp_path: Path) -> None:
    found, _ = bids(source.read_text())
    assert bool(found) == bool(re.search(r"^(name|tasks):", source.read_text(), re.M))
    for name, body in found.items():
        jsonschema.Draft202012Validator(SCHEMA).validate(body)
        assert re.fullmatch(r"\$\d+\.\d\d", body["limit_price"])
        script = tmp_path / f"{name}.sh"
        script.write_text(body["launch_specification"]["startup_script"])
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False).returncode == 0


def test_validator_rejects_a_broken_body() -> None:
    found, _ = bids((ROOT / "examples" / "llm-training.yaml").read_text())
    body = found["llm-training"]
    del body["launch_specification"]["ssh_keys"]
    body["instance_quantity"] = "four"
    assert len(list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(body))) == 2


@pytest.mark.parametrize(("topology", "expected"), [
    ("packed", {"affinity": "cluster"}),
    ("spread", {"anti_affinity": True}),
    ("cluster", {"affinity": "balanced"}),
    ("{interconnect: {intranode: nvlink, internode: infiniband, min_bandwidth_gbps: 400}}",
     {"affinity": "cluster", "gpu_interconnect": "nvlink", "network_tier": "infiniband", "min_bandwidth_gbps": 400}),
    ("{placement: spread, constraints: {same_zone: true, anti_affinity_groups: [b, a]}}",
     {"anti_affinity": True, "zone_affinity": "required", "anti_affinity_groups": ["a", "b"]}),
    ("{constraints: {same_rack: true, max_distance: rack}}",
     {"affinity": "cluster", "rack_affinity": "required", "max_distance": "rack"}),
])
def test_placement_spec_mappings(topology: str, expected: dict) -> None:
    found, _ = bids(f"name: t\ninstance_type: 8xh100\nnum_instances: 2\ntopology: {topology}\n")
    assert found["t"]["placement_spec"] == expected


def test_limit_price_sources_and_identifiers() -> None:
    found, diagnostics = bids("name: t\ninstance_type: 4xa100\npriority: high\n")
    assert found["t"]["limit_price"] == "$48.00", "high tier $12/GPU-hour x 4"
    assert found["t"]["instance_type"] == "a100-80gb.sxm.4x"
    assert found["t"]["project"] == "${MITHRIL_PROJECT}"
    assert {d.code for d in diagnostics} >= {"FLC510", "FLC511", "FLC512"}
    text = ("name: t\ninstance_type: 8xh100\nmax_price_per_hour: 24.5\nregion: us-central1-b\n"
            "ssh_keys: [sshkey_abc]\nvolumes: [{volume_id: vol_1, interface: file}]\n"
            "mithril: {project: proj_x, notification_email: ops@example.com, memory_gb: 512}\n")
    found, diagnostics = bids(text)
    body = found["t"]
    assert body["limit_price"] == "$24.50" and body["region"] == "us-central1-b" and body["project"] == "proj_x"
    assert body["launch_specification"]["ssh_keys"] == ["sshkey_abc"]
    assert body["launch_specification"]["volumes"] == ["vol_1"] and body["launch_specification"]["memory_gb"] == 512
    assert body["notification_email"] == "ops@example.com"
    assert not {d.code for d in diagnostics} & {"FLC510", "FLC511", "FLC512"}
    assert bids("name: t\ninstance_type: a100\n", project="proj_cli")[0]["t"]["project"] == "proj_cli"


HOSTILE = ['$(touch {marker})', '`touch {marker}`', "'; touch {marker}; '", 'a\nb"c\\d', "${{HOME}}"]


def test_hostile_values_do_not_execute(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    env = {f"V{i}": v.format(marker=marker) for i, v in enumerate(HOSTILE)}
    lines = "\n".join(f"  {k}: {json.dumps(v.replace('$', '$$'))}" for k, v in env.items())
    command = json.dumps(f"printf '%s\\n' \"$V0\" \"$V1\" \"$V2\" > {tmp_path / 'out'}".replace("$", "$$"))
    found, _ = bids(f"name: t\ninstance_type: a100\ncommand: {command}\nenv:\n{lines}\n")
    script = tmp_path / "s.sh"
    script.write_text(found["t"]["launch_specification"]["startup_script"])
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False, env=sandbox(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert (tmp_path / "out").read_text().splitlines() == [env["V0"], env["V1"], env["V2"]]


def test_script_size_boundary_and_round_trip(tmp_path: Path) -> None:
    def body_with(size: int) -> tuple[dict, list]:
        found, diagnostics = bids(f"name: t\ninstance_type: a100\ncommand: echo {'x' * size}\n")
        return found.get("t", {}), diagnostics

    fixed = len(render_script("t.yaml", _task())) - 1  # the script of 'echo x' minus its one x
    at_limit, _ = body_with(PLAIN_LIMIT - fixed)
    assert len(at_limit["launch_specification"]["startup_script"]) == PLAIN_LIMIT
    assert "payload=" not in at_limit["launch_specification"]["startup_script"], "exactly at the limit: plain"
    over, _ = body_with(PLAIN_LIMIT - fixed + 1)
    assert "payload=" in over["launch_specification"]["startup_script"], "one over: compressed"
    packed, _ = body_with(PLAIN_LIMIT)
    script = packed["launch_specification"]["startup_script"]
    assert "payload=" in script and len(script) <= PLAIN_LIMIT
    payload = re.search(r"payload='([^']*)'", script).group(1)
    original = gzip.decompress(base64.b64decode(payload)).decode()
    assert original.startswith("#!/bin/bash") and "x" * PLAIN_LIMIT in original
    run = tmp_path / "packed.sh"
    run.write_text(script)
    proc = subprocess.run(["bash", str(run)], capture_output=True, text=True, check=False, env=sandbox(tmp_path))
    assert proc.returncode == 0 and proc.stdout.strip() == "x" * PLAIN_LIMIT
    noise = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(600))
    result = compile_source(f"name: t\ninstance_type: a100\ncommand: echo {noise}\n", "t.yaml", environ={},
                            until="artifacts")
    assert result.artifacts is None and any(d.code == "FLC513" for d in result.diagnostics)
    assert "over flowc's limit" in next(d.message for d in result.diagnostics if d.code == "FLC513")


def _task():
    from flowc.pipeline import compile_source as compile_plan

    return compile_plan("name: t\ninstance_type: a100\ncommand: echo x\n", "t.yaml", environ={}).plan.tasks["t"]


def test_compress_round_trip() -> None:
    script = "#!/bin/bash\necho 'héllo'\n" * 50
    packed = compress_script(script)
    payload = re.search(r"payload='([^']*)'", packed).group(1)
    assert gzip.decompress(base64.b64decode(payload)).decode() == script


class _Offer:
    def __init__(self, region: str, price: float, availability: int | None) -> None:
        self.region, self.price_per_hour, self.availability = region, price, availability


class _Advice:
    price = 19.37
    rationale = "over 168 h, $18.45 covered 75% of the time; with a 5% margin"


class _Pricing:
    def __init__(self, offers: list[_Offer], advice: bool = True) -> None:
        self.offers, self.advice, self.asked = offers, advice, []

    def get_spot_prices(self, instance_types: list[str]) -> list[_Offer]:
        self.asked.append(instance_types)
        return self.offers

    def recommend_limit_price(self, instance_type: str, region: str) -> _Advice | None:
        return _Advice() if self.advice else None


def test_region_policy_capacity_first_then_price() -> None:
    offers = [_Offer("us-east1-a", 10.0, 8), _Offer("us-central1-b", 12.0, 16), _Offer("eu-central1-a", 9.0, 16),
              _Offer("me-central1-a", 1.0, 1)]
    pricing = _Pricing(offers)
    result = compile_source("name: t\ninstance_type: 8xh100\nnum_instances: 2\n", "t.yaml", environ={},
                            until="artifacts", options=BuildOptions(prices=pricing))
    body = json.loads(next(a.content for a in result.artifacts if a.path == "mithril/t.json"))
    assert body["region"] == "eu-central1-a", "16 available beats 8; at 16 the cheaper wins"
    assert body["limit_price"] == "$19.37"
    assert pricing.asked == [["h100-80gb.sxm.8x"]]
    explain = next(a.content for a in result.artifacts if a.path == "mithril/t.explain.txt").decode()
    assert "recommended from price history" in explain and "most capacity (16)" in explain
    assert "FLC512" not in {d.code for d in result.diagnostics}
    none_fit = _Pricing([_Offer("us-east1-a", 10.0, 1)], advice=False)
    result = compile_source("name: t\ninstance_type: 8xh100\nnum_instances: 2\n", "t.yaml", environ={},
                            until="artifacts", options=BuildOptions(prices=none_fit))
    body = json.loads(next(a.content for a in result.artifacts if a.path == "mithril/t.json"))
    assert body["region"] == "us-central5-a" and body["limit_price"] == "$64.00", "default region, tier price"


def test_build_with_sample_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from flowc.cli import main

    monkeypatch.setenv("FLOWC_DATA_DIR", str(tmp_path / "data"))
    source = tmp_path / "t.yaml"
    source.write_text("name: t\ninstance_type: 8xh100\n")
    result = CliRunner().invoke(main, ["build", str(source), "-o", str(tmp_path / "out"), "--prices", "sample"])
    assert result.exit_code == 0, result.output
    body = json.loads((tmp_path / "out" / "mithril" / "t.json").read_text())
    assert body["region"] == "us-central2-a", "the sample data offers 8xh100 there"
    explain = (tmp_path / "out" / "mithril" / "t.explain.txt").read_text()
    assert "recommended from price history" in explain


@pytest.mark.parametrize("stem", ["t\ntouch PWNED;id #", "t\rx", "t\u2028y\u0085z", "$(touch PWNED)", "a'b\"c`d`"])
def test_a_file_name_never_runs_in_the_startup_script(stem: str, tmp_path: Path) -> None:
    """The document's file name stands in the script's header comment; whatever it holds, nothing of it runs."""
    name = f"{stem}.yaml"
    result = compile_source("name: t\ninstance_type: a100\ncommand: echo ok\n", name, environ={}, until="artifacts")
    body = json.loads(next(a.content for a in result.artifacts if a.path == "mithril/t.json"))
    script = body["launch_specification"]["startup_script"]
    header = script.split("\n")[1]
    assert header.startswith("# Generated by flowc from ") and script.split("\n")[2] == "set -euo pipefail"
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "s.sh").write_text(script.replace("bash -c 'echo ok'", "echo ran"))
    proc = subprocess.run(["bash", str(tmp_path / "s.sh")], cwd=run, capture_output=True, text=True, check=False,
                          env=sandbox(tmp_path))
    assert proc.returncode == 0 and proc.stdout == "ran\n", proc.stderr
    assert list(run.iterdir()) == [], "nothing from the file name executed"
