/* flowc_ring.h: the C API of flowc's shared-memory rings (flowc ring ABI v1, docs/ring-abi.md).
 *
 * A ring is a segment in /dev/shm (or /dev/hugepages) created by the flowc launcher; an actor attaches it by
 * name and opens the producer or consumer slot the plan gave it. The implementation is flowc_ring.c, compiled
 * with the program (`cc $(flowc ring-include --cflags) actor.c $(flowc ring-include --sources)`); the Python
 * runtime (flowc.runtime._ring) is a thin wrapper over the same file, so both sides run the same code.
 *
 * Every function returns FLOWC_OK (0) or a negative flowc_status; flowc_strerror() names it and
 * flowc_last_error() gives the detail of the calling thread's last failure. One thread per endpoint: a producer
 * or consumer handle must not be used by two threads at once (different endpoints of one ring may).
 * Timeouts are in nanoseconds: negative waits for ever, 0 does not wait.
 */
#ifndef FLOWC_RING_H
#define FLOWC_RING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The segment format (docs/ring-abi.md). The magic is the bytes "FLCRING1" read as a little-endian u64. */
#define FLOWC_RING_MAGIC 0x31474e4952434c46ULL
#define FLOWC_RING_VERSION 1u
#define FLOWC_RING_FLAG_DROP_OLDEST 1u
#define FLOWC_RING_FLAG_HUGE_PAGES 2u
#define FLOWC_RING_FLAG_SHARED 4u /* each message goes to exactly one consumer (work sharing, docs/ring-abi.md) */
#define FLOWC_RECORD_HEADER 8u
#define FLOWC_RECORD_PAD 1u
#define FLOWC_MAX_ENDS 1024u
#define FLOWC_MIN_CAPACITY 64u
#define FLOWC_MAX_BUDGET_NS 1000000000ULL

/* Byte offsets of the shared fields (checked against the implementation's structs when flowc_ring.c builds). */
#define FLOWC_OFF_MAGIC 0u
#define FLOWC_OFF_VERSION 8u
#define FLOWC_OFF_FLAGS 12u
#define FLOWC_OFF_CAPACITY 16u
#define FLOWC_OFF_PRODUCERS 24u
#define FLOWC_OFF_CONSUMERS 28u
#define FLOWC_OFF_MAX_MESSAGE 32u
#define FLOWC_OFF_DATA_OFFSET 40u
#define FLOWC_OFF_SPIN_NS 48u
#define FLOWC_OFF_YIELD_NS 56u
#define FLOWC_OFF_RESERVE 64u
#define FLOWC_OFF_PUBLISHED 128u
#define FLOWC_OFF_DATA_SEQ 192u
#define FLOWC_OFF_DATA_WAITERS 196u
#define FLOWC_OFF_SPACE_SEQ 256u
#define FLOWC_OFF_SPACE_WAITERS 260u
#define FLOWC_OFF_CLOSED 320u
#define FLOWC_OFF_BROKEN 324u
#define FLOWC_HEADER_SIZE 384u
#define FLOWC_LINE_SIZE 64u
/* within a producer line (at FLOWC_HEADER_SIZE + i * FLOWC_LINE_SIZE) */
#define FLOWC_OFF_SENT 0u
#define FLOWC_OFF_BP_WAITS 8u
#define FLOWC_OFF_CLAIM 16u
#define FLOWC_OFF_PID 24u
/* within a consumer line (after the producer lines) */
#define FLOWC_OFF_CURSOR 0u
#define FLOWC_OFF_RECEIVED 8u
#define FLOWC_OFF_DROPPED 16u
/* shared rings only: consumer line 0 holds the group's next position to hand out; each line its own claim */
#define FLOWC_OFF_TAKEN 24u
#define FLOWC_OFF_HOLDING 32u
#define FLOWC_OFF_HOLDER_PID 40u

typedef enum flowc_status {
    FLOWC_OK = 0,
    FLOWC_ETIMEOUT = -1,  /* the wait reached its timeout */
    FLOWC_ECLOSED = -2,   /* the ring is closed: a send is refused, a receive found it drained */
    FLOWC_EINVAL = -3,    /* an invalid argument */
    FLOWC_ENOENT = -4,    /* no ring segment, or no channel, of that name */
    FLOWC_ESYS = -5,      /* a system call failed (the detail names it and errno) */
    FLOWC_EBADSEG = -6,   /* not a valid flowc ring segment (bad magic, version, geometry) */
    FLOWC_EBROKEN = -7,   /* the ring is broken: corrupt positions or a producer died mid-publish */
    FLOWC_ETOOBIG = -8,   /* a message beyond the ring's max_message, or beyond the receive buffer */
    FLOWC_ERANGE = -9,    /* a producer or consumer index out of range */
    FLOWC_EINTR = -10,    /* a wait hook asked the wait to stop (flowc_wait_hooks.interrupted) */
    FLOWC_ENOMEM = -11,   /* out of memory */
    FLOWC_EBADENV = -12   /* FLOWC_CHANNELS is missing or not the JSON flowc writes */
} flowc_status;

typedef struct flowc_ring flowc_ring;
typedef struct flowc_producer flowc_producer;
typedef struct flowc_consumer flowc_consumer;
typedef struct flowc_channels flowc_channels;

/* Geometry and policy of a ring, copied from its checked header. */
typedef struct flowc_ring_info {
    uint64_t capacity;    /* bytes of the data area */
    uint64_t max_message; /* largest payload */
    uint64_t spin_ns;     /* default busy-poll budget of a wait */
    uint64_t yield_ns;    /* default sched_yield budget after it */
    uint32_t producers;
    uint32_t consumers;
    int drop_oldest;
    int huge_pages;
    int shared; /* each message goes to exactly one consumer */
} flowc_ring_info;

/* Ring-wide counters; per-endpoint ones come from flowc_ring_producer_counters / _consumer_counters. */
typedef struct flowc_ring_stats {
    uint64_t published_bytes; /* the `published` position */
    uint64_t reserved_bytes;  /* the `reserve` position */
    int broken;
    int closed;
} flowc_ring_stats;

typedef struct flowc_producer_counters {
    uint64_t sent;
    uint64_t backpressure_waits;
} flowc_producer_counters;

typedef struct flowc_consumer_counters {
    uint64_t received;
    uint64_t dropped;
    uint64_t cursor; /* the consumer's position: `published_bytes - cursor` bytes wait for it */
} flowc_consumer_counters;

/* What flowc_ring_create_in writes into a fresh segment's header. */
typedef struct flowc_ring_params {
    uint64_t capacity;
    uint32_t producers;
    uint32_t consumers;
    uint64_t max_message;
    int drop_oldest;
    int huge_pages;
    uint64_t spin_ns;
    uint64_t yield_ns;
    int shared; /* work sharing: each message to exactly one consumer (not with drop_oldest) */
} flowc_ring_params;

/* Called around the blocking parts of a wait (an embedder releases a global lock there) and between them
 * (at least every 100 ms and after EINTR): a nonzero `interrupted` ends the wait with FLOWC_EINTR. Any member
 * may be NULL. */
typedef struct flowc_wait_hooks {
    void *ctx;
    void *(*block_begin)(void *ctx);
    void (*block_end)(void *ctx, void *state);
    int (*interrupted)(void *ctx);
} flowc_wait_hooks;

/* Called by flowc_recv_with once the next record's length is known: returns FLOWC_OK and where to copy the
 * payload (`len` bytes), or a status that ends the receive with the record left unread. It may be called again
 * for the same receive (drop_oldest: the record was dropped while it was copied). */
typedef int (*flowc_recv_sink)(void *ctx, uint32_t len, void **dest);

const char *flowc_strerror(int status);
/* The detail of the calling thread's last failure ("ring broken: ... (position N)"), or "". */
const char *flowc_last_error(void);

/* Rings by name: maps /dev/shm/<name> (or /dev/hugepages/<name>) and checks its header. */
int flowc_ring_attach(const char *name, flowc_ring **out);
/* Unmaps (or, for flowc_ring_from_memory, forgets) the segment. Close the ring's endpoints first. */
void flowc_ring_close(flowc_ring *ring);
/* A ring over memory the caller mapped and keeps mapped while the ring and its endpoints live. */
int flowc_ring_from_memory(void *base, size_t len, flowc_ring **out);
int flowc_ring_info_of(const flowc_ring *ring, flowc_ring_info *out);
int flowc_ring_stats_of(const flowc_ring *ring, flowc_ring_stats *out);
int flowc_ring_producer_counters(const flowc_ring *ring, uint32_t index, flowc_producer_counters *out);
int flowc_ring_consumer_counters(const flowc_ring *ring, uint32_t index, flowc_consumer_counters *out);
/* Sets the closed flag (senders stop, receivers drain) and wakes every waiter. */
int flowc_ring_close_writers(flowc_ring *ring);
int flowc_ring_wake_all(flowc_ring *ring);
/* 1 when the closed flag is set, else 0 (not a status). */
int flowc_ring_is_closed(const flowc_ring *ring);

/* Segment-level operations on raw memory (the launcher's side). The close/wake/closed functions only need the
 * fixed header words, so they work on a segment whose geometry is corrupt. */
int flowc_ring_layout_size(uint64_t capacity, uint32_t producers, uint32_t consumers, uint64_t *out);
int flowc_ring_create_in(void *base, size_t len, const flowc_ring_params *params);
int flowc_segment_close_writers(void *base, size_t len);
int flowc_segment_wake_all(void *base, size_t len);
int flowc_segment_is_closed(const void *base, size_t len, int *closed);

/* Endpoints. The ring must outlive them. */
int flowc_producer_open(flowc_ring *ring, uint32_t index, flowc_producer **out);
void flowc_producer_close(flowc_producer *p);
/* Overrides the ring's wait budgets (each at most FLOWC_MAX_BUDGET_NS) and sets the wait hooks (may be NULL). */
int flowc_producer_configure(flowc_producer *p, uint64_t spin_ns, uint64_t yield_ns, const flowc_wait_hooks *hooks);
uint64_t flowc_producer_max_message(const flowc_producer *p);
/* Writes one message: FLOWC_OK, FLOWC_ETIMEOUT (ring full), FLOWC_ECLOSED, or an error. */
int flowc_send(flowc_producer *p, const void *data, size_t len, int64_t timeout_ns);

int flowc_consumer_open(flowc_ring *ring, uint32_t index, flowc_consumer **out);
void flowc_consumer_close(flowc_consumer *c);
int flowc_consumer_configure(flowc_consumer *c, uint64_t spin_ns, uint64_t yield_ns, const flowc_wait_hooks *hooks);
/* Reads one message into buf: FLOWC_OK with *len set, FLOWC_ETIMEOUT, FLOWC_ECLOSED (closed and drained),
 * FLOWC_ETOOBIG with *len set to the size needed (the message stays unread), or an error. */
int flowc_recv(flowc_consumer *c, void *buf, size_t cap, size_t *len, int64_t timeout_ns);
int flowc_recv_with(flowc_consumer *c, flowc_recv_sink sink, void *ctx, int64_t timeout_ns);
/* Bytes (records and padding) published but not yet read by this consumer. */
uint64_t flowc_consumer_pending(const flowc_consumer *c);

/* An actor's channels, from the FLOWC_CHANNELS environment variable the launcher sets:
 * {"inputs": {"<channel>": {"ring": "<segment>", "index": <n>}, ...}, "outputs": {...}}. */
int flowc_channels_from_env(flowc_channels **out);
/* The same from a JSON text of `len` bytes (no terminator needed). */
int flowc_channels_parse(const char *json, size_t len, flowc_channels **out);
/* The consumer of input `channel` / the producer of output `channel`, owned by the flowc_channels. */
int flowc_channels_input(const flowc_channels *ch, const char *channel, flowc_consumer **out);
int flowc_channels_output(const flowc_channels *ch, const char *channel, flowc_producer **out);
uint32_t flowc_channels_count(const flowc_channels *ch, int outputs);
/* The name of input (outputs == 0) or output `i`, in sorted order; NULL past the end. */
const char *flowc_channels_name(const flowc_channels *ch, int outputs, uint32_t i);
void flowc_channels_free(flowc_channels *ch);

#ifdef __cplusplus
}
#endif

#endif /* FLOWC_RING_H */
