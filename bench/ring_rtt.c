/* ring_rtt.c: 64-byte round trips over two flowc rings through the C API, one process per end.
 *
 * Usage: ring_rtt ping RING_AB RING_BA N
 *        ring_rtt pong RING_AB RING_BA N
 *
 * Both rings exist already (SPSC, made by the caller, for example bench/datapath.py with Ring.create); this
 * program only attaches them. `ping` sends on RING_AB (producer 0) and waits for the echo on RING_BA (consumer 0);
 * `pong` echoes every message from RING_AB back on RING_BA. Both ends do N/10 unmeasured round trips first, then N
 * measured ones, so they agree on the count without talking. The caller pins each process to its CPU.
 * `ping` times each round trip with CLOCK_MONOTONIC and prints {"n": N, "p50_ns": ..., "p99_ns": ..., "p999_ns":
 * ...} on stdout (percentiles interpolate between the two nearest ranks, as flowc.runtime.report.percentile does).
 *
 * Waits use the rings' default budgets (spin, then yield, then futex), as an actor would. A wait that lasts
 * longer than TIMEOUT_NS means the other end is gone: the program reports it and exits 1 rather than hang.
 *
 * Build: cc -O2 $(flowc ring-include --cflags) -o ring_rtt bench/ring_rtt.c $(flowc ring-include --libs)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowc_ring.h"
#include "round_trips.h"

#define SIZE 64
#define TIMEOUT_NS 10000000000LL

static int fail(const char *what, int rc) {
    fprintf(stderr, "ring_rtt: %s: %s (%s)\n", what, flowc_strerror(rc), flowc_last_error());
    return 1;
}

/* One message out on `tx`, one back from `rx`; a received length other than SIZE is a failure. */
static int send_one(flowc_producer *tx, const unsigned char *buf) {
    int rc = flowc_send(tx, buf, SIZE, TIMEOUT_NS);
    return rc == FLOWC_OK ? 0 : fail("send", rc);
}

static int recv_one(flowc_consumer *rx, unsigned char *buf) {
    size_t len = 0;
    int rc = flowc_recv(rx, buf, SIZE, &len, TIMEOUT_NS);
    if (rc != FLOWC_OK) return fail("recv", rc);
    if (len != SIZE) {
        fprintf(stderr, "ring_rtt: received %zu bytes, expected %d\n", len, SIZE);
        return 1;
    }
    return 0;
}

static int ping(flowc_producer *tx, flowc_consumer *rx, uint64_t n) {
    uint64_t warm = n / 10;
    uint64_t *samples = malloc(n * sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "ring_rtt: out of memory\n");
        return 1;
    }
    unsigned char out[SIZE], in[SIZE];
    memset(out, 'p', sizeof out);
    for (uint64_t i = 0; i < warm + n; i++) {
        uint64_t start = now_ns();
        if (send_one(tx, out) || recv_one(rx, in)) {
            free(samples);
            return 1;
        }
        uint64_t end = now_ns();
        if (i >= warm) samples[i - warm] = end - start;
    }
    print_percentiles(samples, n);
    free(samples);
    return 0;
}

static int pong(flowc_producer *tx, flowc_consumer *rx, uint64_t n) {
    unsigned char buf[SIZE];
    for (uint64_t i = 0; i < n / 10 + n; i++)
        if (recv_one(rx, buf) || send_one(tx, buf)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "ping") && strcmp(argv[1], "pong"))) {
        fprintf(stderr, "usage: ring_rtt ping|pong RING_AB RING_BA N\n");
        return 2;
    }
    int is_ping = !strcmp(argv[1], "ping");
    char *end = NULL;
    unsigned long long n = strtoull(argv[4], &end, 10);
    if (end == argv[4] || *end || n == 0) {
        fprintf(stderr, "ring_rtt: N must be a positive integer, not '%s'\n", argv[4]);
        return 2;
    }
    flowc_ring *ab = NULL, *ba = NULL;
    flowc_producer *tx = NULL;
    flowc_consumer *rx = NULL;
    int rc, status = 1;
    if ((rc = flowc_ring_attach(argv[2], &ab)) != FLOWC_OK) return fail(argv[2], rc);
    if ((rc = flowc_ring_attach(argv[3], &ba)) != FLOWC_OK) {
        fail(argv[3], rc);
        goto out;
    }
    /* ping writes A→B and reads B→A; pong the other way round. Each ring is SPSC, so both use index 0. */
    if ((rc = flowc_producer_open(is_ping ? ab : ba, 0, &tx)) != FLOWC_OK) {
        fail("producer", rc);
        goto out;
    }
    if ((rc = flowc_consumer_open(is_ping ? ba : ab, 0, &rx)) != FLOWC_OK) {
        fail("consumer", rc);
        goto out;
    }
    status = is_ping ? ping(tx, rx, n) : pong(tx, rx, n);
out:
    flowc_consumer_close(rx);
    flowc_producer_close(tx);
    flowc_ring_close(ba);
    flowc_ring_close(ab);
    return status;
}
