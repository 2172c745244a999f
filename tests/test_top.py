"""``flowc top``: rates and quantiles on hand-made readings, then the real command against running nodes.

The live view is driven in a real terminal (a detached ``tmux`` session): it must show the channel's rates,
pick up rings that appear after it started, and leave with exit 0 on Ctrl-C.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from flowc.runtime.histogram import Histogram
from flowc.runtime.observe import ChannelState, NodeState, RouteState
from flowc.runtime.top_view import quantile, rate, render, snapshot
from node_runs import build, launch, stop, wait_for

SOLO = """
actors:
  feed: {type: producer, outputs: [ticks], run: "flowc.actors:synthetic_producer", params: {rate: 2000, size: 64}}
  sink: {type: consumer, inputs: [ticks], run: "flowc.actors:latency_sink"}
nodes:
  solo:
    hostname: localhost
    actors: {feed: {cpu: [0]}, sink: {cpu: [1]}}
    local_channels: {ticks: {buffer_size: 1MiB}}
"""


def channel(sent: int, received: int, *, dropped: int = 0, waits: int = 0, occupancy: int = 0,
            closed: bool = False, broken: bool = False) -> ChannelState:
    """A ring of 1 MiB read by one consumer, ``sink``."""
    return ChannelState("ticks", 1 << 20, occupancy, sent, waits, {"sink": received}, {"sink": dropped}, closed,
                        broken)


def histogram(*nanoseconds: int) -> dict:
    """The published form of a histogram of these observations."""
    h = Histogram()
    for ns in nanoseconds:
        h.observe_ns(ns)
    return h.as_dict()


def flowc(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``flowc`` with ``args`` and capture its output."""
    return subprocess.run([sys.executable, "-m", "flowc", *args], capture_output=True, text=True, check=False,
                          timeout=timeout)


# -- rates -----------------------------------------------------------------------------------------------------


def test_rate_is_the_difference_over_the_time_between_readings() -> None:
    assert rate(3000, 1000, 2.0) == 1000.0
    assert rate(7, 7, 0.5) == 0.0
    assert rate(10, 0, 0.25) == 40.0


@pytest.mark.parametrize(("now", "before", "seconds"), [
    (5, None, 1.0),     # the first reading: nothing to compare with
    (None, 5, 1.0),     # the counter is unknown now
    (5, 9, 1.0),        # it went backwards: its ring or bridge started again between the readings
    (9, 5, 0.0),        # no time passed
])
def test_rate_is_unknown_rather_than_wrong(now: int | None, before: int | None, seconds: float) -> None:
    assert rate(now, before, seconds) is None


# -- quantiles -------------------------------------------------------------------------------------------------


def test_quantile_interpolates_inside_the_bucket_that_holds_the_rank() -> None:
    # 100 observations spread evenly over (1 ms, 2 ms], none elsewhere
    even = {"bounds_s": [0.001, 0.002, 0.004], "buckets": [0, 100, 100, 100]}
    assert quantile(even, 0.5) == pytest.approx(0.0015)
    assert quantile(even, 0.99) == pytest.approx(0.00199)
    assert quantile(even, 0.0) == pytest.approx(0.001)
    # the first bucket starts at 0
    assert quantile({"bounds_s": [0.001, 0.002], "buckets": [4, 4, 4]}, 0.25) == pytest.approx(0.00025)
    # 90 fast, 10 slow: p50 among the fast, p99 among the slow
    split = {"bounds_s": [0.001, 0.01, 0.1], "buckets": [90, 90, 100, 100]}
    assert quantile(split, 0.5) == pytest.approx(0.001 * 50 / 90)
    assert quantile(split, 0.99) == pytest.approx(0.01 + 0.09 * 9 / 10)


def test_a_rank_beyond_the_last_bound_is_the_last_bound() -> None:
    assert quantile({"bounds_s": [0.001, 0.002], "buckets": [1, 1, 10]}, 0.5) == 0.002


def test_quantile_of_a_real_histogram_lands_in_the_bucket_of_the_true_value() -> None:
    published = histogram(*[40_000] * 98, 3_000_000, 3_000_000)  # 40 µs, with two 3 ms outliers
    assert 25e-6 < quantile(published, 0.5) <= 50e-6
    assert 2.5e-3 < quantile(published, 0.995) <= 5e-3
    assert quantile(histogram(), 0.5) is None


@pytest.mark.parametrize("bad", [
    None,
    [],
    {"bounds_s": [0.001], "buckets": [1]},                      # one bucket short (no +Inf)
    {"bounds_s": [0.002, 0.001], "buckets": [1, 2, 2]},          # bounds not increasing
    {"bounds_s": [0.001, 0.002], "buckets": [5, 2, 5]},          # cumulative counts going down
    {"bounds_s": [0.001, 0.002], "buckets": [1, "2", 3]},        # not a count
    {"bounds_s": [0.001, 0.002], "buckets": [True, True, True]},
    {"bounds_s": [0.001, float("inf")], "buckets": [1, 2, 2]},
    {"bounds_s": "0.001", "buckets": [1, 2]},
    {"buckets": [1, 2]},
])
def test_a_malformed_histogram_has_no_quantile(bad: object) -> None:
    assert quantile(bad, 0.5) is None  # type: ignore[arg-type]


def test_quantile_refuses_q_outside_0_to_1() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile({"bounds_s": [1.0], "buckets": [1, 1]}, 1.5)


# -- the view --------------------------------------------------------------------------------------------------


def reading(taken_s: float, ticks: ChannelState | None, routes: list[RouteState] | None = None,
            latency: dict | None = None) -> NodeState:
    """A reading of node ``solo`` at ``taken_s``; without ``ticks`` its ring is missing."""
    return NodeState("solo", taken_s, {"ticks": ticks} if ticks else {}, [] if ticks else ["ticks"], [],
                     routes or [], latency or {})


def out_leg(**stats: object) -> RouteState:
    """The sender of route ``feed`` towards ``core`` with what it published (nothing without ``stats``)."""
    return RouteState("feed", "out", "core", dict(stats) if stats else None)


def test_the_first_reading_shows_totals_and_no_rates() -> None:
    view = snapshot(reading(10.0, channel(500, 400, occupancy=1 << 18), latency={"sink": histogram(40_000)}), None)
    assert view["interval_s"] is None
    ticks = view["channels"]["ticks"]
    assert (ticks["sent"], ticks["sent_per_s"]) == (500, None)
    assert ticks["consumers"]["sink"] == {"received": 400, "received_per_s": None, "dropped": 0,
                                          "dropped_per_s": None}
    assert (ticks["occupancy_bytes"], ticks["capacity_bytes"], ticks["occupancy_percent"]) == (1 << 18, 1 << 20, 25.0)
    assert view["latency"]["sink"]["count"] == 1 and view["latency"]["sink"]["count_per_s"] is None


def test_the_second_reading_gives_rates_of_every_counter() -> None:
    before = reading(10.0, channel(1000, 900, dropped=2, waits=10), [out_leg(sent=100, bytes_on_wire=1000)],
                     {"sink": histogram(*[40_000] * 100)})
    now = reading(12.0, channel(3000, 2900, dropped=6, waits=30),
                  [out_leg(sent=300, acked=280, resent=1, reconnects=0, bytes_on_wire=5000, connected=True,
                           round_trip_histogram=histogram(*[300_000] * 10))],
                  {"sink": histogram(*[40_000] * 300)})
    view = snapshot(now, before)
    assert view["interval_s"] == 2.0
    ticks = view["channels"]["ticks"]
    assert (ticks["sent_per_s"], ticks["backpressure_waits_per_s"]) == (1000.0, 10.0)
    assert ticks["consumers"]["sink"] == {"received": 2900, "received_per_s": 1000.0, "dropped": 6,
                                          "dropped_per_s": 2.0}
    assert view["routes"] == [{
        "route": "feed", "direction": "out", "peer": "core", "connected": True, "messages": 300,
        "messages_per_s": 100.0, "acked": 280, "resent": 1, "reconnects": 0, "wire_bytes": 5000,
        "wire_bytes_per_s": 2000.0, "round_trip_p50_s": pytest.approx(quantile(histogram(300_000), 0.5))}]
    assert 250e-6 < view["routes"][0]["round_trip_p50_s"] <= 500e-6
    sink = view["latency"]["sink"]
    assert sink["count"] == 300 and sink["count_per_s"] == 100.0 and 25e-6 < sink["p50_s"] <= 50e-6
    json.dumps(view)  # what --format json prints


def test_a_ring_that_appears_or_restarts_has_no_rate_until_the_next_reading() -> None:
    appeared = snapshot(reading(2.0, channel(50, 50)), reading(1.0, None))
    assert appeared["missing_channels"] == [] and appeared["channels"]["ticks"]["sent_per_s"] is None
    restarted = snapshot(reading(2.0, channel(50, 50)), reading(1.0, channel(9000, 9000)))
    assert restarted["channels"]["ticks"]["sent_per_s"] is None


def test_route_counters_that_are_not_counts_are_unknown_not_trusted() -> None:
    silent = snapshot(reading(2.0, None, [out_leg()]), reading(1.0, None, [out_leg()]))
    assert silent["routes"][0]["connected"] is False and silent["routes"][0]["messages_per_s"] is None
    hostile = snapshot(reading(2.0, None, [out_leg(sent="9", acked=-1, resent=True, round_trip_histogram=[1])]),
                       reading(1.0, None, [out_leg(sent=1)]))
    leg = hostile["routes"][0]
    assert (leg["messages"], leg["messages_per_s"], leg["acked"], leg["resent"], leg["round_trip_p50_s"]) == \
        (None, None, None, None, None)


def draw(view: dict, width: int = 120) -> str:
    """The text of :func:`render` on a terminal ``width`` columns wide."""
    console = Console(width=width, force_terminal=False, color_system=None)
    with console.capture() as captured:
        console.print(render(view, "12:00:00"))
    return captured.get()


def test_the_tables_show_rates_states_and_missing_channels() -> None:
    before = reading(10.0, channel(1000, 900), [out_leg(sent=100, bytes_on_wire=1024)],
                     {"sink": histogram(40_000)})
    now = reading(11.0, channel(3000, 2500, occupancy=1 << 19, broken=True),
                  [out_leg(sent=300, acked=290, bytes_on_wire=3072, connected=True)], {"sink": histogram(40_000)})
    text = draw(snapshot(now, before))
    assert "node 'solo'" in text and "12:00:00" in text
    assert re.search(r"ticks +2,000 +3,000 +0 +512 KiB 50% +BROKEN", text), text
    assert re.search(r"→ sink +1,600 +2,500 +0", text), text
    assert re.search(r"feed → core +yes +200 +290 .* 2\.0 KiB/s", text), text
    assert "sink" in text and "p99" in text
    first = draw(snapshot(reading(1.0, None, [out_leg()]), None))
    assert "channels missing: ticks" in first and "rates from the next reading" in first
    assert re.search(r"feed → core +no +- ", first), first
    narrow = draw(snapshot(now, before), width=80)
    assert all(len(line) <= 80 for line in narrow.splitlines()) and "2,000" in narrow


# -- the command -----------------------------------------------------------------------------------------------


def test_unknown_nodes_and_plans_are_the_same_clear_errors_as_flowc_metrics(tmp_path: Path) -> None:
    plan = build(tmp_path, SOLO)
    for args in ([str(plan), "--node", "nope"], [str(tmp_path / "missing.json"), "--node", "solo"]):
        shown = flowc("top", *args, "--once")
        served = flowc("metrics", *args)
        assert shown.returncode == served.returncode and shown.returncode in (1, 2)
        assert shown.stderr == served.stderr.replace("flowc metrics", "flowc top")
        assert "Traceback" not in shown.stderr
    assert "node 'nope' is not in" in flowc("top", str(plan), "--node", "nope").stderr
    live_json = flowc("top", str(plan), "--node", "solo", "--format", "json")
    assert live_json.returncode == 2 and "--format json needs --once" in live_json.stderr


def test_once_on_a_node_that_is_not_running_lists_its_missing_channels(tmp_path: Path) -> None:
    plan = build(tmp_path, SOLO)
    done = flowc("top", str(plan), "--node", "solo", "--once", "--format", "json", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["node"] == "solo" and view["missing_channels"] == ["ticks"] and view["channels"] == {}
    assert view["interval_s"] >= 0.2


def test_once_json_shows_a_running_channel_with_its_rates(tmp_path: Path) -> None:
    plan = build(tmp_path, SOLO)
    proc = launch(plan, "solo", tmp_path / "report.json", "--duration", "30")
    try:
        def flowing() -> dict | None:
            done = flowc("top", str(plan), "--node", "solo", "--once", "--format", "json", "--interval", "0.5")
            assert done.returncode == 0, done.stderr
            view = json.loads(done.stdout)
            ticks = view["channels"].get("ticks")
            return view if ticks and ticks["sent_per_s"] and view["latency"].get("sink", {}).get("count") else None

        view = wait_for(flowing, timeout=30)
        text = flowc("top", str(plan), "--node", "solo", "--once", "--interval", "0.5")
    finally:
        stop(proc)
    ticks = view["channels"]["ticks"]
    assert ticks["sent_per_s"] > 0 and ticks["consumers"]["sink"]["received_per_s"] > 0
    assert ticks["state"] == "ok" and ticks["capacity_bytes"] == 1 << 20
    assert view["missing_channels"] == [] and view["routes"] == []
    assert 0.4 < view["interval_s"] < 5
    sink = view["latency"]["sink"]
    assert sink["count"] > 0 and 0 < sink["p50_s"] <= sink["p99_s"]
    assert text.returncode == 0 and re.search(r"ticks +[\d,.]+ +[\d,]+ ", text.stdout), text.stdout


# -- the live view in a terminal -------------------------------------------------------------------------------


def tmux_path() -> str:
    """The ``tmux`` program; its absence fails the test (``.ci/run`` installs it), it never skips it."""
    found = shutil.which("tmux")
    if found is None:
        pytest.fail("tmux is not installed; the live view is tested in a tmux pane (.ci/run installs tmux)",
                    pytrace=False)
    return found


def test_the_live_view_follows_a_node_in_a_terminal_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    tmux = tmux_path()
    plan = build(tmp_path, SOLO)
    socket_name, session = f"flowc-top-{secrets.token_hex(4)}", f"top-{secrets.token_hex(4)}"
    command = shlex.join([sys.executable, "-m", "flowc", "top", str(plan), "--node", "solo"])

    def run(*args: str) -> str:
        done = subprocess.run([tmux, "-L", socket_name, *args], capture_output=True, text=True, check=False,
                              timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def pane() -> str:
        return run("capture-pane", "-p", "-t", session)

    def showing(pattern: str) -> str | None:
        text = pane()
        return text if re.search(pattern, text) else None

    proc = None
    try:
        # A private tmux server (-L), a wide pane, and the command's status printed once it ends. The trap keeps
        # the wrapping shell alive through Ctrl-C, as an interactive shell would (its child gets the default);
        # the sleep keeps the pane open for capture-pane until the server is killed.
        run("new-session", "-d", "-s", session, "-x", "150", "-y", "50", "sh", "-c",
            f"trap : INT; {command}; echo EXIT=$?; exec sleep 300")
        # Started before the node: it says what is missing and keeps refreshing.
        wait_for(lambda: "channels missing: ticks" in pane(), timeout=30)
        proc = launch(plan, "solo", tmp_path / "report.json", "--duration", "30")
        screen = wait_for(lambda: showing(r"ticks +[\d,]+(\.\d)? +[\d,]+ "), timeout=30)
        assert "channels missing" not in screen
        assert re.search(r"→ sink +[\d,]+(\.\d)? +[\d,]+ +0", screen), screen
        run("send-keys", "-t", session, "C-c")
        ended = wait_for(lambda: showing("EXIT="), timeout=30)
        assert "EXIT=0" in ended, ended
        assert "Traceback" not in ended
        # the alternate screen is gone: the terminal shows what it showed before, not the last frame
        assert "channels missing" not in ended and "msgs/s" not in ended
    finally:
        subprocess.run([tmux, "-L", socket_name, "kill-server"], capture_output=True, check=False, timeout=30)
        if proc is not None:
            stop(proc)
