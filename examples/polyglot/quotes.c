/* A flowc producer actor in C: COUNT timestamped quotes on its output channel "ticks", then done.
 *
 * Each message starts like flowc.actors:synthetic_producer's: send time (CLOCK_MONOTONIC ns), sequence, producer
 * id (little-endian u64, u64, u32), so Python and Rust actors downstream can check order and measure latency.
 * Build: cc $(flowc ring-include --cflags) -O2 examples/polyglot/quotes.c $(flowc ring-include --libs) \
 *           -o examples/polyglot/quotes
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowc_ring.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(void) {
    const char *count_text = getenv("QUOTES_COUNT");
    uint64_t count = count_text ? strtoull(count_text, NULL, 10) : 10000;
    flowc_channels *channels = NULL;
    flowc_producer *ticks = NULL;
    int rc = flowc_channels_from_env(&channels);
    if (rc == FLOWC_OK) rc = flowc_channels_output(channels, "ticks", &ticks);
    if (rc != FLOWC_OK) {
        fprintf(stderr, "quotes: %s: %s\n", flowc_strerror(rc), flowc_last_error());
        return 1;
    }
    unsigned char message[64] = {0};
    const uint32_t producer = 0xC0DE;
    for (uint64_t seq = 0; seq < count; seq++) {
        uint64_t sent = now_ns();
        memcpy(message, &sent, 8);
        memcpy(message + 8, &seq, 8);
        memcpy(message + 16, &producer, 4);
        rc = flowc_send(ticks, message, sizeof message, 5000000000LL);
        if (rc != FLOWC_OK) {
            fprintf(stderr, "quotes: message %llu: %s: %s\n", (unsigned long long)seq, flowc_strerror(rc),
                    flowc_last_error());
            flowc_channels_free(channels);
            return 1;
        }
    }
    fprintf(stderr, "quotes: sent %llu messages\n", (unsigned long long)count);
    flowc_channels_free(channels);
    return 0;
}
