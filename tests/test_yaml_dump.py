"""The emitters' YAML and text fast paths write exactly what the libraries' ordinary calls write."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.emit.systemd import env_assignment, unit_text
from flowc.emit.templates import environment, renderer
from flowc.emit.yaml_dump import dump_yaml

# Scalars whose plain form PyYAML resolves to another type, or that it must quote or escape.
_TRICKY = ["", "yes", "No", "on", "~", "null", "=", "<<", "1", "-1", "0x1f", "0o17", "1e3", "1_000", ".inf", "-.Inf",
           ".nan", "2024-01-01", "1:20", "12:30:45", "- a", "a: b", "#x", "x #y", " lead", "trail ", "'q'", '"d"',
           "a\nb", "tab\there", "ünïcode", "\u2028", "%x", "@a", "`a", "{a}", "[a]", "*a", "&a", "!a", "|a", ">a",
           "?", ":", "-", "a,b"]
_SCALARS = st.one_of(st.sampled_from(_TRICKY), st.text(max_size=12), st.integers(), st.booleans(), st.none(),
                     st.floats(allow_nan=False, allow_infinity=False))
_DOCS = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(_TRICKY), st.text(max_size=8)), inner,
                                                 max_size=4)), max_leaves=20)


def _reference(document: Any) -> bytes:
    text = yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=True,
                     default_flow_style=False, allow_unicode=True, width=1 << 16)
    return text.encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DOCS)
def test_dump_yaml_writes_what_pyyaml_writes(document: Any) -> None:
    assert dump_yaml(document) == _reference(document)


def test_dump_yaml_resolves_the_same_value_differently_as_key_and_value_alike() -> None:
    document = {"yes": "yes", "1": ["1", 1], "=": {"~": None}, "": ""}
    assert dump_yaml(document) == _reference(document)
    assert dump_yaml(document) == dump_yaml(document)  # the remembered answers change nothing


_COMMON = {"source": "a%b.yaml", "topology": "t", "node": "n", "user": "flowc", "flowc": "/usr/bin/flowc",
           "plan": "/etc/flowc/t/n.plan.json", "target": "flowc-t.target", "channels_unit": "flowc-t-channels.service",
           "report_dir": "/run/flowc/t"}
_VARIABLES = {
    "actor.service.j2": {"actor": "a", "role": "producer", "after": ["u1.service"], "cpus": "1 2", "numa": 0,
                         "numa_preferred": True, "foreign_numa": "1", "realtime_priority": 50, "memory_max": "1G",
                         "env": [("MSG", 'say "hi" 100%')]},
    "bridge.service.j2": {"route": "r", "direction": "out", "index": 1, "peer": "h", "peer_node": "m", "after": [],
                          "cpus": "", "credentials": [("n.secret", "/k/n.secret")]},
    "channels.service.j2": {},
    "metrics.service.j2": {"address": "0.0.0.0", "port": 9464},
    "node.target.j2": {"units": ["a.service", "b.service"]},
}


def test_a_shared_context_renders_what_render_does() -> None:
    env = environment("systemd", {"env_assignment": env_assignment, "unit_text": unit_text})
    for name, variables in _VARIABLES.items():
        merged = {**_COMMON, **variables}
        assert renderer(env, name)(merged) == env.get_template(name).render(**merged), name
