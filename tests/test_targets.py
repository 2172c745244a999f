"""The target registry: which targets a build writes, their settings, and how a new one plugs in."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.cli import main
from flowc.emit import registry
from flowc.emit.kubernetes.settings import Settings as KubernetesSettings
from flowc.emit.registry import TARGETS, Target, UnknownTarget, select
from flowc.emit.systemd import Settings as SystemdSettings
from flowc.model.options import BuildOptions
from flowc.pipeline import compile_source

from conftest import ROOT

MULTI = ROOT / "examples" / "multi-node.yaml"


def files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def test_selection_defaults_always_the_plan_and_unknown_names() -> None:
    assert [t.name for t in select(None)] == ["plan", "kubernetes", "systemd", "mithril"]
    assert [t.name for t in select(("graph", "systemd"))] == ["plan", "systemd", "graph"], "registry order"
    with pytest.raises(UnknownTarget, match="'helm'.*targets: graph, kubernetes"):
        select(("helm",))
    assert len({t.name for t in TARGETS}) == len(TARGETS)


def test_build_writes_only_the_targets_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(MULTI), "-o", str(out), "--target", "systemd"])
    assert result.exit_code == 0, result.output
    written = files(out)
    assert {"flowc/plan.json", "flowc/manifest.json"} <= written
    assert all(p.startswith(("flowc/", "systemd/")) for p in written), written
    assert "FLC504" not in result.output, "the kubernetes warning belongs to a target that did not run"
    graph = CliRunner().invoke(main, ["build", str(MULTI), "-o", str(out), "-t", "kubernetes,graph"])
    assert graph.exit_code == 0, graph.output
    written = files(out)
    assert "flowc/graph.dot" in written and not any(p.startswith("systemd/") for p in written)
    assert (out / "flowc/graph.dot").read_text() == CliRunner().invoke(main, ["graph", str(MULTI)]).stdout


def test_unknown_target_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(MULTI), "-o", str(tmp_path / "out"), "--target", "helm"])
    assert result.exit_code == 2 and "unknown target 'helm'" in result.output
    assert not (tmp_path / "out").exists()


def test_settings_merge_defaults_document_then_command_line() -> None:
    section = {"namespace": "from-doc", "topology_keys": {"rack": "example.com/rack"}}
    merged = KubernetesSettings.merged(section, {"namespace": "from-cli"}, "multi-node.yaml")
    assert merged.namespace == "from-cli" and merged.part_of == "multi-node"
    assert merged.topology_keys["rack"] == "example.com/rack" and merged.topology_keys["zone"].endswith("/zone")
    assert KubernetesSettings.merged(section, {"namespace": None}, "x.yaml").namespace == "from-doc"
    systemd = SystemdSettings.merged({"user": "svc"}, {"flowc_path": "/opt/flowc"}, "multi-node.yaml")
    assert (systemd.user, systemd.flowc_path, systemd.plan_dir) == ("svc", "/opt/flowc", "/etc/flowc/multi-node")
    with pytest.raises(ValueError, match="unknown"):
        SystemdSettings.merged({"unknown": 1}, {}, "x.yaml")


def test_a_new_target_is_one_module_and_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "TARGETS", (*TARGETS, Target("sample", "sample_target", "test", default=False)))
    options = BuildOptions(targets=("sample",), target_options={"sample": {"greeting": "hi"}})
    result = compile_source(MULTI.read_text(), "multi-node.yaml", environ={}, until="artifacts", options=options)
    produced = {a.path: a.content for a in result.artifacts}
    assert set(produced) == {"flowc/plan.json", "sample/nodes.txt"}
    assert produced["sample/nodes.txt"] == b"hi data_node\nhi strategy_node\n"
