/* cacheline_floor.c: the floor under any shared-memory round trip on this machine — two processes on two CPUs
 * bouncing one cache line, with nothing else in the way (no ring, no records, no waits that can sleep).
 *
 * Usage: cacheline_floor N CPU_A CPU_B
 *
 * The parent (pinned to CPU_A) forks a child (pinned to CPU_B); they share one 64-byte-aligned counter in an
 * anonymous MAP_SHARED mapping. Round trip i: the parent stores 2i+1, the child sees it and stores 2i+2, the
 * parent sees that. The parent times each round trip with CLOCK_MONOTONIC and, after N/10 unmeasured ones,
 * prints {"p50_ns": ..., "p99_ns": ..., "p999_ns": ..., "n": N} on stdout (percentiles interpolate between the two
 * nearest ranks, as flowc.runtime.report.percentile does). Exit status 1 on any failure.
 *
 * Build: cc -O2 -o cacheline_floor bench/cacheline_floor.c
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "round_trips.h"

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("cacheline_floor: sched_setaffinity");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: cacheline_floor N CPU_A CPU_B\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    int cpu_a = atoi(argv[2]), cpu_b = atoi(argv[3]);
    if (n <= 0) {
        fprintf(stderr, "cacheline_floor: N must be positive\n");
        return 2;
    }
    uint64_t warm = (uint64_t)n / 10, total = warm + (uint64_t)n;

    /* A whole page, so the counter owns its cache line and nothing else in either process shares it. */
    _Atomic uint64_t *line = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (line == MAP_FAILED) {
        perror("cacheline_floor: mmap");
        return 1;
    }
    atomic_store_explicit(line, 0, memory_order_relaxed);
    uint64_t *samples = malloc((size_t)n * sizeof *samples);
    if (samples == NULL) {
        fprintf(stderr, "cacheline_floor: out of memory\n");
        return 1;
    }

    pid_t child = fork();
    if (child < 0) {
        perror("cacheline_floor: fork");
        return 1;
    }
    if (child == 0) {
        if (pin(cpu_b) != 0) _exit(1);
        for (uint64_t i = 0; i < total; i++) {
            /* Acquire pairs with the parent's release: a ring would read the payload after this load. */
            while (atomic_load_explicit(line, memory_order_acquire) != 2 * i + 1) {
            }
            atomic_store_explicit(line, 2 * i + 2, memory_order_release);
        }
        _exit(0);
    }

    if (pin(cpu_a) != 0) {
        kill(child, SIGKILL);
        return 1;
    }
    for (uint64_t i = 0; i < total; i++) {
        uint64_t start = now_ns();
        atomic_store_explicit(line, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(line, memory_order_acquire) != 2 * i + 2) {
        }
        uint64_t end = now_ns();
        if (i >= warm) samples[i - warm] = end - start;
    }
    int status = 0;
    if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "cacheline_floor: the child failed\n");
        return 1;
    }
    print_percentiles(samples, (size_t)n);
    free(samples);
    return 0;
}
