"""A node's metrics endpoint: Prometheus metrics, ``/healthz`` and ``/readyz`` over HTTP.

``flowc launch`` serves it on the node's ``metrics`` address and port (``--metrics-port``/``--metrics-address``
override them, ``--no-metrics`` turns it off); ``flowc metrics`` serves it for a node whose processes systemd runs.
Every scrape reads the node afresh through :class:`~flowc.runtime.observe.NodeReader` (segments, published bridge
and sink counters, ``/proc``), so the data path does no work for it. Metric names (all labelled with ``node``):

* ``flowc_channel_messages_sent_total``, ``flowc_channel_backpressure_waits_total``,
  ``flowc_channel_occupancy_bytes``, ``flowc_channel_capacity_bytes``, ``flowc_channel_broken`` (``channel``);
  ``flowc_channel_messages_received_total``, ``flowc_channel_messages_dropped_total`` (``channel``, ``consumer``);
* ``flowc_actor_state`` (``actor``, ``state``: 1 for the current one), ``flowc_actor_restarts_total``,
  ``flowc_actor_cpu_seconds_total``, ``flowc_actor_resident_memory_bytes``, ``flowc_actor_last_exit_code``
  (``actor``: every supervised process, route bridges as ``route:<route>:<in|out>:<index>``);
* ``flowc_route_connected``, ``flowc_route_messages_sent_total``, ``flowc_route_messages_acknowledged_total``,
  ``flowc_route_messages_resent_total``, ``flowc_route_messages_received_total``, ``flowc_route_reconnects_total``,
  ``flowc_route_wire_bytes_total``, ``flowc_route_round_trip_seconds`` (histogram) (``route``, ``direction``,
  ``peer``);
* ``flowc_sink_latency_seconds`` (histogram, ``actor``): the one-way latency a latency sink measures.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from flowc.model.plan import MetricsPlan
from flowc.runtime.observe import NodeReader, NodeState, ProcessState

#: The states a supervised process can be in (``flowc_actor_state`` has one series per state).
STATES = ("starting", "running", "restarting", "finished", "failed")


class MetricsError(Exception):
    """The metrics endpoint cannot be served (its port is taken, privileged, or its address is not here)."""


def endpoint(planned: MetricsPlan, port: int | None = None, address: str | None = None) -> MetricsPlan:
    """The plan's metrics endpoint with a port or address given on the command line instead.

    Example:
        >>> endpoint(MetricsPlan(), port=9500)
        MetricsPlan(address='0.0.0.0', port=9500)
    """
    return planned.model_copy(update={k: v for k, v in (("port", port), ("address", address)) if v is not None})


class NodeCollector(Collector):
    """Turns a fresh reading of the node into Prometheus metric families on every scrape."""

    def __init__(self, reader: NodeReader, processes: Callable[[], list[ProcessState]] | None = None) -> None:
        """Collect from ``reader``.

        Args:
            reader: Reads the node.
            processes: The supervised processes now (a launcher's); ``None`` when nothing supervises them here.
        """
        self.reader = reader
        self.processes = processes
        self.lock = threading.Lock()  # one reading at a time: the reader keeps attached rings

    def state(self) -> NodeState:
        """Read the node now."""
        with self.lock:
            return self.reader.read(self.processes() if self.processes else None)

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family of the node (called by the registry on each scrape)."""
        state = self.state()
        yield from _channel_metrics(state)
        yield from _process_metrics(state)
        yield from _route_metrics(state)
        yield from _latency_metrics(state)


def _channel_metrics(state: NodeState) -> Iterator[Metric]:
    node = state.node
    labels = ["node", "channel"]
    sent = CounterMetricFamily("flowc_channel_messages_sent", "Messages published into the channel's ring",
                               labels=labels)
    waits = CounterMetricFamily("flowc_channel_backpressure_waits", "Sends that waited for space in the ring",
                                labels=labels)
    occupancy = GaugeMetricFamily("flowc_channel_occupancy_bytes", "Bytes the slowest consumer has yet to read",
                                  labels=labels)
    capacity = GaugeMetricFamily("flowc_channel_capacity_bytes", "Size of the ring's data area", labels=labels)
    broken = GaugeMetricFamily("flowc_channel_broken", "1 when an endpoint found the ring corrupt", labels=labels)
    per = [*labels, "consumer"]
    received = CounterMetricFamily("flowc_channel_messages_received", "Messages a consumer read", labels=per)
    dropped = CounterMetricFamily("flowc_channel_messages_dropped",
                                  "Messages overwritten before a consumer read them (drop_oldest)", labels=per)
    for name, c in state.channels.items():
        sent.add_metric([node, name], c.sent)
        waits.add_metric([node, name], c.backpressure_waits)
        occupancy.add_metric([node, name], c.occupancy_bytes)
        capacity.add_metric([node, name], c.capacity_bytes)
        broken.add_metric([node, name], int(c.broken))
        for consumer, count in c.received.items():
            received.add_metric([node, name, consumer], count)
            dropped.add_metric([node, name, consumer], c.dropped[consumer])
    yield from (sent, received, dropped, waits, occupancy, capacity, broken)


def _process_metrics(state: NodeState) -> Iterator[Metric]:
    node, labels = state.node, ["node", "actor"]
    current = GaugeMetricFamily("flowc_actor_state", "1 for the state the process is in", labels=[*labels, "state"])
    restarts = CounterMetricFamily("flowc_actor_restarts", "Times the launcher started the process again",
                                   labels=labels)
    cpu = CounterMetricFamily("flowc_actor_cpu_seconds", "CPU time of every run of the process", labels=labels)
    memory = GaugeMetricFamily("flowc_actor_resident_memory_bytes", "Resident memory of the running process",
                               labels=labels)
    exit_code = GaugeMetricFamily("flowc_actor_last_exit_code", "Exit code of the process's last run that ended",
                                  labels=labels)
    for p in state.processes:
        for name in STATES:
            current.add_metric([node, p.key, name], int(p.state == name))
        restarts.add_metric([node, p.key], p.restarts)
        cpu.add_metric([node, p.key], p.cpu_seconds)
        if p.resident_bytes is not None:
            memory.add_metric([node, p.key], p.resident_bytes)
        if p.last_exit_code is not None:
            exit_code.add_metric([node, p.key], p.last_exit_code)
    yield from (current, restarts, cpu, memory, exit_code)


_ROUTE_COUNTERS = (
    ("flowc_route_messages_sent", "sent", "Messages sent for the first time (sender)"),
    ("flowc_route_messages_acknowledged", "acked", "Messages the receiver acknowledged (sender)"),
    ("flowc_route_messages_resent", "resent", "Messages sent again after a reconnect or resync (sender)"),
    ("flowc_route_messages_received", "received", "Messages delivered to the local channel (receiver)"),
    ("flowc_route_reconnects", "reconnects", "Times the stream resumed after its first handshake"),
    ("flowc_route_wire_bytes", "bytes_on_wire", "Bytes of the frames this leg sent (sender) or received (receiver)"),
)


def _route_metrics(state: NodeState) -> Iterator[Metric]:
    labels = ["node", "route", "direction", "peer"]
    connected = GaugeMetricFamily("flowc_route_connected", "1 while the route leg is up", labels=labels)
    counters = [(CounterMetricFamily(name, text, labels=labels), key) for name, key, text in _ROUTE_COUNTERS]
    trips = HistogramMetricFamily("flowc_route_round_trip_seconds",
                                  "Round trips of the route's probes, sender to receiver and back", labels=labels)
    for leg in state.routes:
        values = [state.node, leg.route, leg.direction, leg.peer]
        connected.add_metric(values, int(leg.connected))
        if leg.stats is None:
            continue
        for family, key in counters:
            family.add_metric(values, int(leg.stats.get(key, 0)))
        histogram = leg.stats.get("round_trip_histogram")
        if leg.direction == "out" and histogram:
            trips.add_metric(values, _buckets(histogram), histogram["sum_s"])
    yield connected
    yield from (family for family, _ in counters)
    yield trips


def _latency_metrics(state: NodeState) -> Iterator[Metric]:
    latency = HistogramMetricFamily("flowc_sink_latency_seconds", "One-way latency a latency sink measured",
                                    labels=["node", "actor"])
    for actor, histogram in state.latency.items():
        latency.add_metric([state.node, actor], _buckets(histogram), histogram["sum_s"])
    yield latency


def _buckets(histogram: dict[str, Any]) -> list[tuple[str, float]]:
    bounds = [f"{b:g}" for b in histogram["bounds_s"]] + ["+Inf"]
    return list(zip(bounds, histogram["buckets"], strict=True))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """Say nothing per request (a scraper calls every few seconds)."""


class _Server(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Answer each request on its own thread, so a slow client cannot hold up a probe."""
        thread = threading.Thread(target=self._serve_one, args=(request, client_address), daemon=True)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken connection must not stop the endpoint
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Drop a connection that failed (the client went away); the endpoint goes on."""


Check = Callable[[], tuple[bool, dict[str, Any]]]


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` on one address and port, from a thread of its own."""

    def __init__(self, address: str, port: int, collector: NodeCollector, live: Check, ready: Check) -> None:
        """Bind the port now (so a taken port fails before the node starts) without serving yet.

        Args:
            address: The IP address to bind.
            port: The TCP port.
            collector: What ``/metrics`` reports.
            live: ``/healthz``: ``(ok, body)``.
            ready: ``/readyz``: ``(ok, body)``.

        Raises:
            MetricsError: The port cannot be bound (the message says why and what to do).
        """
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        self.metrics_app = make_wsgi_app(registry)
        self.live, self.ready = live, ready
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        try:
            self.server = server_class((address, port), _QuietHandler, bind_and_activate=True)
        except OSError as exc:
            raise MetricsError(_bind_error(address, port, exc)) from None
        self.server.set_app(self._app)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="flowc-metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.server.server_address[1]

    def start(self) -> None:
        """Start answering requests."""
        self.thread.start()

    def stop(self) -> None:
        """Stop answering and close the port."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self.metrics_app(environ, start_response)
        if path in ("/healthz", "/readyz"):
            ok, body = (self.live if path == "/healthz" else self.ready)()
            text = (json.dumps(body, sort_keys=True) + "\n").encode()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(text)))])
            return [text]
        text = b"not found: try /metrics, /healthz or /readyz\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
        return [text]


def _bind_error(address: str, port: int, exc: OSError) -> str:
    where = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot serve metrics on {where}: the port is in use; give the node another 'metrics.port' "
                "in the document, or pass --metrics-port (or --no-metrics)")
    if exc.errno == errno.EACCES:
        return f"cannot serve metrics on {where}: permission denied (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot serve metrics on {where}: no interface of this machine has that address"
    return f"cannot serve metrics on {where}: {exc.strerror or exc}"
