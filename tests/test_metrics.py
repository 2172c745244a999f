"""The metrics endpoint of a running node: Prometheus text, /healthz and /readyz, read over real HTTP.

Launchers run as real processes on real rings; the text is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from node_runs import build, free_port, launch, stop, wait_for

ONE_NODE = """
actors:
  feed: {type: producer, outputs: [ticks], run: "runtime_actors:emit_then_wait",
         params: {rate: 20000, size: 64, count: COUNT}}
  sink: {type: consumer, inputs: [ticks], run: "SINK"}
nodes:
  solo:
    hostname: localhost
    actors: {feed: {cpu: [0]}, sink: {cpu: [1]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
"""

TWO_NODES = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer",
         params: {rate: 2000, size: 64}}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  edge:
    hostname: localhost
    actors: {feed: {cpu: [0]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
  core:
    hostname: localhost
    actors: {sink: {cpu: [1]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
inter_node:
  feed_route: {source: edge.ticks, targets: [core], auth: none}
"""


def url(plan: Path, node: str, path: str) -> str:
    """The address of ``path`` on ``node``'s endpoint."""
    metrics = json.loads(plan.read_text())["nodes"][node]["metrics"]
    return f"http://127.0.0.1:{metrics['port']}{path}"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_scrape_matches_the_final_report(tmp_path: Path) -> None:
    plan = build(tmp_path, ONE_NODE.replace("COUNT", "3000").replace("SINK", "flowc.actors:latency_sink"))
    # The producer sends 3000 messages and then idles: the counters stand still while the node runs on.
    proc = launch(plan, "solo", tmp_path / "report.json", "--duration", "60")
    try:
        def settled() -> str | None:
            text = httpx.get(url(plan, "solo", "/metrics"), timeout=5).text
            values = samples(text)
            received = values.get(("flowc_channel_messages_received_total",
                                   (("channel", "ticks"), ("consumer", "sink"), ("node", "solo"))))
            timed = values.get(("flowc_sink_latency_seconds_count", (("actor", "sink"), ("node", "solo"))))
            return text if received == timed == 3000 else None

        text = wait_for(settled)
    finally:
        stop(proc)
    report = json.loads((tmp_path / "report.json").read_text())
    values = samples(text)
    channel = (("channel", "ticks"), ("node", "solo"))
    assert values[("flowc_channel_messages_sent_total", channel)] == report["channels"]["ticks"]["sent"] == 3000
    assert values[("flowc_channel_messages_received_total", (*channel[:1], ("consumer", "sink"), channel[1]))] \
        == report["channels"]["ticks"]["received"]
    assert values[("flowc_channel_capacity_bytes", channel)] == 1024 * 1024
    assert values[("flowc_channel_occupancy_bytes", channel)] == 0
    assert values[("flowc_channel_backpressure_waits_total", channel)] == report["channels"]["ticks"][
        "backpressure_waits"]
    sink = (("actor", "sink"), ("node", "solo"))
    assert values[("flowc_sink_latency_seconds_count", sink)] == report["latency_us"]["count"] == 3000
    assert values[("flowc_sink_latency_seconds_bucket", (("actor", "sink"), ("le", "+Inf"), ("node", "solo")))] \
        == 3000
    for actor in ("feed", "sink"):
        labels = (("actor", actor), ("node", "solo"))
        assert values[("flowc_actor_restarts_total", labels)] == report["actors"][actor]["restarts"] == 0
        assert values[("flowc_actor_cpu_seconds_total", labels)] > 0


def test_openmetrics_is_served_when_asked(tmp_path: Path) -> None:
    plan = build(tmp_path, ONE_NODE.replace("COUNT", "100").replace("SINK", "flowc.actors:latency_sink"))
    proc = launch(plan, "solo", tmp_path / "report.json", "--duration", "30")
    try:
        answer = wait_for(lambda: httpx.get(url(plan, "solo", "/metrics"), timeout=5,
                                            headers={"Accept": "application/openmetrics-text"}))
        assert answer.headers["content-type"].startswith("application/openmetrics-text")
        assert answer.text.rstrip().endswith("# EOF")
        assert httpx.get(url(plan, "solo", "/nothing"), timeout=5).status_code == 404
    finally:
        stop(proc)


def test_readyz_turns_ready_with_every_actor_and_route_and_health_follows_the_launcher(tmp_path: Path) -> None:
    plan = build(tmp_path, TWO_NODES)
    edge = launch(plan, "edge", tmp_path / "edge.json")
    try:
        # The sender cannot connect while the receiving node is down: alive, but not ready, and it says why.
        health = wait_for(lambda: httpx.get(url(plan, "edge", "/healthz"), timeout=5))
        assert health.status_code == 200 and health.json()["ok"] is True
        time.sleep(1.0)
        early = httpx.get(url(plan, "edge", "/readyz"), timeout=5)
        assert early.status_code == 503
        assert any("route 'feed_route'" in why and "not connected" in why for why in early.json()["not_ready"])
        core = launch(plan, "core", tmp_path / "core.json")
        try:
            for node in ("edge", "core"):
                ready = wait_for(lambda node=node: (r := httpx.get(url(plan, node, "/readyz"), timeout=5))
                                 .status_code == 200 and r)
                assert ready.json() == {"node": node, "ready": True, "not_ready": []}
            values = samples(httpx.get(url(plan, "edge", "/metrics"), timeout=5).text)
            leg = (("direction", "out"), ("node", "edge"), ("peer", "core"), ("route", "feed_route"))
            assert values[("flowc_route_connected", leg)] == 1
            wait_for(lambda: samples(httpx.get(url(plan, "edge", "/metrics"), timeout=5).text).get(
                ("flowc_route_messages_acknowledged_total", leg), 0) > 0)
        finally:
            stop(core)
    finally:
        stop(edge)
    with pytest.raises(httpx.TransportError):
        httpx.get(url(plan, "edge", "/healthz"), timeout=2)


def test_a_crash_looping_actor_makes_the_node_unready(tmp_path: Path) -> None:
    plan = build(tmp_path, ONE_NODE.replace("COUNT", "100000").replace("SINK", "runtime_actors:always_fail"))
    proc = launch(plan, "solo", tmp_path / "report.json", "--duration", "60")
    try:
        def failing() -> dict | None:
            answer = httpx.get(url(plan, "solo", "/readyz"), timeout=5)
            body = answer.json()
            return body if answer.status_code == 503 and any("'sink' is" in w for w in body["not_ready"]) else None

        body = wait_for(failing)
        assert body["ready"] is False
        values = wait_for(lambda: (v := samples(httpx.get(url(plan, "solo", "/metrics"), timeout=5).text))
                          .get(("flowc_actor_last_exit_code", (("actor", "sink"), ("node", "solo")))) == 4 and v)
        assert values[("flowc_actor_state", (("actor", "feed"), ("node", "solo"), ("state", "running")))] == 1
    finally:
        stop(proc)


def test_a_taken_port_stops_the_launch_before_anything_starts(tmp_path: Path) -> None:
    plan = build(tmp_path, ONE_NODE.replace("COUNT", "100").replace("SINK", "flowc.actors:latency_sink"))
    port = json.loads(plan.read_text())["nodes"]["solo"]["metrics"]["port"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        proc = launch(plan, "solo", tmp_path / "report.json", "--duration", "5")
        err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}: the port is in use" in err
    assert "Traceback" not in err and not (tmp_path / "report.json").exists()
    # nothing of the node was left behind: a second launch on a free port runs
    assert "running 2 process(es)" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--metrics-port", "80"], "80 is a privileged port"),
    (["--metrics-port", "70000"], "70000 is not in the range 0<=x<=65535"),
    (["--metrics-address", "example.org"], "'example.org' is not an IP address"),
])
def test_bad_ports_and_addresses_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    plan = build(tmp_path, ONE_NODE.replace("COUNT", "100").replace("SINK", "flowc.actors:latency_sink"))
    done = subprocess.run([sys.executable, "-m", "flowc", "launch", str(plan), "--node", "solo", *args],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr


def test_flowc_metrics_serves_a_node_without_a_launcher(tmp_path: Path) -> None:
    plan = build(tmp_path, ONE_NODE.replace("COUNT", "100").replace("SINK", "flowc.actors:latency_sink"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FLOWC_METRICS_PORT"}
    server = subprocess.Popen([sys.executable, "-m", "flowc", "metrics", str(plan), "--node", "solo",
                               "--metrics-port", str(port), "--metrics-address", "127.0.0.1"], env=env,
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        unready = wait_for(lambda: httpx.get(base + "/readyz", timeout=5))
        assert unready.status_code == 503 and unready.json()["not_ready"] == ["channel 'ticks' is not created"]
        created = subprocess.run([sys.executable, "-m", "flowc", "channels", "create", str(plan), "--node", "solo"],
                                 capture_output=True, text=True, check=False)
        assert created.returncode == 0, created.stderr
        try:
            assert httpx.get(base + "/readyz", timeout=5).status_code == 200
            values = samples(httpx.get(base + "/metrics", timeout=5).text)
            assert values[("flowc_channel_messages_sent_total", (("channel", "ticks"), ("node", "solo")))] == 0
        finally:
            subprocess.run([sys.executable, "-m", "flowc", "channels", "remove", str(plan), "--node", "solo"],
                           capture_output=True, check=False)
    finally:
        err = stop(server)
    assert server.returncode == 0, err


def test_channels_create_makes_the_folder_systemd_units_publish_in(tmp_path: Path) -> None:
    from flowc.model.node_view import NodeView
    from flowc.runtime.actor_main import load_node

    plan = build(tmp_path, ONE_NODE.replace("COUNT", "100").replace("SINK", "flowc.actors:latency_sink"))
    report_dir = Path(NodeView.of(load_node(str(plan), "solo"), "solo").report_dir)
    flowc = [sys.executable, "-m", "flowc", "channels"]
    assert subprocess.run([*flowc, "create", str(plan), "--node", "solo"], capture_output=True).returncode == 0
    try:
        assert report_dir.is_dir() and (report_dir.stat().st_mode & 0o777) == 0o700
    finally:
        assert subprocess.run([*flowc, "remove", str(plan), "--node", "solo"], capture_output=True).returncode == 0
    assert not report_dir.exists()
