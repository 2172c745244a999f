"""Every diagnostic code flowc emits, registered once with a title.

Blocks by stage: FLC1xx reading and parsing, FLC2xx schema, FLC3xx semantics,
FLC4xx placement and transport, FLC5xx targets. Codes are stable: a retired code is never reused.
"""

CODES: dict[str, str] = {
    # 1xx: reading, YAML, environment substitution
    "FLC101": "yaml syntax error",
    "FLC102": "input file too large",
    "FLC103": "empty document",
    "FLC104": "duplicate key",
    "FLC105": "yaml alias or merge key",
    "FLC106": "more than one yaml document",
    "FLC107": "cannot read input file",
    "FLC108": "unsupported yaml tag",
    "FLC109": "text that is not valid unicode",
    "FLC110": "undefined environment variable",
    "FLC111": "malformed variable reference",
    # 2xx: schema
    "FLC201": "unknown key",
    "FLC202": "wrong type",
    "FLC203": "unknown enum value",
    "FLC204": "missing required key",
    "FLC205": "value out of range",
    "FLC206": "invalid identifier",
    "FLC207": "invalid hostname",
    "FLC208": "invalid value format",
    "FLC209": "schema violation",
    "FLC210": "document declares nothing",
    # 3xx: semantics of the actor topology
    "FLC301": "input channel without a producer",
    "FLC302": "output channel without a consumer",
    "FLC303": "channel type contradicts its producers or consumers",
    "FLC304": "placed actor is not declared",
    "FLC305": "declared actor is not placed",
    "FLC306": "actor placed more than once",
    "FLC307": "cpu booked twice on a node",
    "FLC308": "numa node not in the node's numa_topology",
    "FLC309": "cpu outside its numa node",
    "FLC310": "actor role contradicts its channels",
    "FLC311": "invalid cpu list",
    "FLC312": "invalid buffer size",
    "FLC313": "local channel not used on its node",
    "FLC314": "channel listed twice on an actor",
    "FLC315": "numa nodes share a cpu",
    # 32x: semantics of routes
    "FLC320": "route names an unknown node",
    "FLC321": "route source channel is not produced on its node",
    "FLC322": "channel crosses nodes without a route",
    "FLC323": "route targets its own source node",
    "FLC324": "route target does not consume the channel",
    "FLC325": "two routes carry the same channel to the same node",
    # 33x: semantics of tasks against the instance catalog
    "FLC330": "unknown instance type",
    "FLC331": "nvlink domain larger than a node",
    "FLC332": "rdma fabric cannot span regions",
    "FLC333": "bandwidth above what the instance fabric delivers",
    "FLC334": "instance fabric bandwidth unknown",
    "FLC335": "internode requirement on a single instance",
    "FLC336": "instance type lacks the requested interconnect",
    "FLC337": "contradictory placement constraints",
    "FLC338": "unknown region",
    "FLC339": "duplicate task name",
    "FLC340": "block volume on a multi-instance task",
    # 4xx: placement and transport
    "FLC401": "shared memory across numa nodes",
    "FLC402": "dataflow cycle",
    # 5xx: targets (emitters)
    "FLC501": "output directory not created by flowc",
    "FLC502": "cannot write output",
}
