/* round_trips.h: the clock and the percentiles the native round-trip benchmarks share (cacheline_floor.c,
 * ring_rtt.c). Header-only; each program includes it once. */
#ifndef FLOWC_BENCH_ROUND_TRIPS_H
#define FLOWC_BENCH_ROUND_TRIPS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Inclusive linear interpolation between the two nearest ranks of sorted samples (as
 * flowc.runtime.report.percentile does). */
static double quantile(const uint64_t *sorted, size_t n, double q) {
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n) return (double)sorted[n - 1];
    return (double)sorted[lo] + (pos - (double)lo) * (double)(sorted[lo + 1] - sorted[lo]);
}

/* Sorts the n round-trip samples (ns) and prints {"n", "p50_ns", "p99_ns", "p999_ns"} on stdout. */
static void print_percentiles(uint64_t *samples, size_t n) {
    qsort(samples, n, sizeof *samples, cmp_u64);
    printf("{\"n\": %zu, \"p50_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f}\n", n, quantile(samples, n, 0.5),
           quantile(samples, n, 0.99), quantile(samples, n, 0.999));
}

#endif
