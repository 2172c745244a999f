/* Shared-memory message rings for flowc actors: the implementation of flowc_ring.h (flowc ring ABI v1).
 *
 * One segment holds a header, one cache line per producer and per consumer, and a byte ring of
 * variable-size records ([u32 len | u32 flags] + payload padded to 8 bytes). Positions are 64-bit byte
 * counters that only grow; a record never straddles the end of the ring (a PAD record fills the gap).
 *
 * Ordering (docs/ring-abi.md, and the README's "The data path: memory ordering"):
 *   producers reserve [h, end) with a CAS on `reserve`, write the record, then wait until `published == h`
 *   and store `published = end` with RELEASE; consumers load `published` with ACQUIRE before reading
 *   records below it, and give space back by storing their `cursor` with RELEASE (CAS in drop_oldest,
 *   where producers also advance slow consumers' cursors past the oldest records).
 * Waiting: spin, then sched_yield, then a non-private futex doorbell (shared between processes); the
 * waker only makes the syscall when a waiter has registered, so the fast path has no syscall.
 *
 * Trust: the segment is written by other processes, so nothing read from it steers a memory access unchecked.
 * The header is copied and checked once when a ring is mapped (check_meta: sizes against the mapping this
 * process was given, the layout it computes itself); positions are checked for alignment and for the order
 * cursor <= published <= reserve where they are read, and record lengths against max_message and the end of the
 * data. What fails a check breaks the ring (a `broken` flag every endpoint sees) and returns FLOWC_EBROKEN.
 * Liveness: every wait honours its deadline and polls its hooks. Waiting for `published` to reach a position
 * is waiting for another producer; each producer records the position it claims and its pid in its own line,
 * so a stalled waiter finds the reserver and, when it is dead (kill(pid, 0), or a zombie), breaks the ring.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "include/flowc_ring.h"
#include "flowc_ring_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Blocking waits wake at least this often so the interrupted hook (Ctrl-C in Python) is polled promptly. */
#define SIGNAL_POLL_NS 100000000LL
/* A producer waiting for the producers ahead of it to publish spins this many rounds (a peer's memcpy) before
 * it looks at the clock; the liveness of the reserver it waits for is checked first after STALL_CHECK_NS and
 * then every STALL_POLL_NS (kill(pid, 0): a syscall, so never on the fast path). */
#define STALL_SPINS 64u
#define STALL_CHECK_NS 1000000LL
#define STALL_POLL_NS 10000000LL
/* A producer holding a reservation cannot give it back (commits are in order), so at its deadline it keeps
 * waiting for a live reserver ahead of it for at most this long; past it the ring is declared broken. */
#define PUBLISH_STALL_NS 1000000000LL
/* A shared ring's consumer waiting to release in claim order yields this long, then sleeps on the space doorbell:
 * a copy takes well under a microsecond, so a longer wait means the taker ahead was preempted, and spinning on
 * an oversubscribed machine would only keep it off the core. */
#define RELEASE_YIELD_NS 50000LL

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STORE_RLX(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

typedef struct {
    uint64_t magic;
    uint32_t version, flags;
    uint64_t capacity;
    uint32_t producers, consumers;
    uint64_t max_message, data_offset, spin_ns, yield_ns;
} meta_t;

typedef struct {
    meta_t meta;
    _Alignas(64) uint64_t reserve;   /* end of the last reservation (producers CAS it) */
    _Alignas(64) uint64_t published; /* everything below is readable; advanced in reservation order */
    _Alignas(64) uint32_t data_seq;  /* futex doorbell: consumers wait for data */
    uint32_t data_waiters;
    _Alignas(64) uint32_t space_seq; /* futex doorbell: producers wait for space */
    uint32_t space_waiters;
    _Alignas(64) uint32_t closed;
    uint32_t broken; /* set once a reservation can never be published (dead reserver, corrupt positions) */
} ring_hdr;

typedef struct {
    _Alignas(64) uint64_t sent;
    uint64_t bp_waits;
    /* The position this producer is reserving or last reserved, stored before its reserve CAS, and its pid:
     * a producer stuck waiting for `published` to reach it finds the reserver of the stuck position here and
     * asks the kernel whether it is alive. Both are only written by this producer, in its own cache line. */
    uint64_t claim;
    int32_t pid;
} prod_line;

typedef struct {
    _Alignas(64) uint64_t cursor;
    uint64_t received;
    uint64_t dropped; /* written by producers (fetch_add) in drop_oldest, by consumers in a shared ring */
    /* Shared rings only. Line 0's `taken` is the group's next position to hand out (consumers CAS it); `cursor`
     * of line 0 is the group's release position, below which every record is read (producers wait on it).
     * `holding` is the position this consumer claimed and is copying (UINT64_MAX: none) and `holder_pid` its pid,
     * so a consumer waiting to release after it finds a dead holder. */
    uint64_t taken;
    uint64_t holding;
    int32_t holder_pid;
} cons_line;

/* The layout is part of the segment format (FLOWC_RING_VERSION): new fields only go into existing padding. */
_Static_assert(sizeof(meta_t) == 64 && sizeof(ring_hdr) == FLOWC_HEADER_SIZE, "ring header layout changed");
_Static_assert(sizeof(prod_line) == FLOWC_LINE_SIZE && sizeof(cons_line) == FLOWC_LINE_SIZE, "lines changed");
#define AT(type, field, off) _Static_assert(offsetof(type, field) == (off), #field " moved")
AT(meta_t, magic, FLOWC_OFF_MAGIC); AT(meta_t, version, FLOWC_OFF_VERSION); AT(meta_t, flags, FLOWC_OFF_FLAGS);
AT(meta_t, capacity, FLOWC_OFF_CAPACITY); AT(meta_t, producers, FLOWC_OFF_PRODUCERS);
AT(meta_t, consumers, FLOWC_OFF_CONSUMERS); AT(meta_t, max_message, FLOWC_OFF_MAX_MESSAGE);
AT(meta_t, data_offset, FLOWC_OFF_DATA_OFFSET); AT(meta_t, spin_ns, FLOWC_OFF_SPIN_NS);
AT(meta_t, yield_ns, FLOWC_OFF_YIELD_NS); AT(ring_hdr, reserve, FLOWC_OFF_RESERVE);
AT(ring_hdr, published, FLOWC_OFF_PUBLISHED); AT(ring_hdr, data_seq, FLOWC_OFF_DATA_SEQ);
AT(ring_hdr, data_waiters, FLOWC_OFF_DATA_WAITERS); AT(ring_hdr, space_seq, FLOWC_OFF_SPACE_SEQ);
AT(ring_hdr, space_waiters, FLOWC_OFF_SPACE_WAITERS); AT(ring_hdr, closed, FLOWC_OFF_CLOSED);
AT(ring_hdr, broken, FLOWC_OFF_BROKEN); AT(prod_line, sent, FLOWC_OFF_SENT);
AT(prod_line, bp_waits, FLOWC_OFF_BP_WAITS); AT(prod_line, claim, FLOWC_OFF_CLAIM); AT(prod_line, pid, FLOWC_OFF_PID);
AT(cons_line, cursor, FLOWC_OFF_CURSOR); AT(cons_line, received, FLOWC_OFF_RECEIVED);
AT(cons_line, dropped, FLOWC_OFF_DROPPED);
AT(cons_line, taken, FLOWC_OFF_TAKEN); AT(cons_line, holding, FLOWC_OFF_HOLDING);
AT(cons_line, holder_pid, FLOWC_OFF_HOLDER_PID);
#undef AT

struct flowc_ring {
    ring_hdr *h;
    prod_line *prods;
    cons_line *conss;
    unsigned char *data;
    meta_t m;      /* the checked copy: the shared header can change under us */
    size_t map_len; /* nonzero when flowc_ring_attach mapped the segment (flowc_ring_close unmaps it) */
};

typedef struct endpoint {
    flowc_ring *r;
    ring_hdr *h;
    prod_line *prods;
    cons_line *conss;
    unsigned char *data;
    uint64_t cap, max_message, spin_ns, yield_ns;
    /* Last seen min consumer cursor (producer) or `published` (consumer): both only grow, so a stale value is
     * safe and re-reading the shared line only when it says "full"/"empty" keeps cache lines from bouncing. */
    uint64_t cached;
    uint32_t nprod, ncons, drop, shared, index, is_producer;
    flowc_wait_hooks hooks;
} endpoint;

struct flowc_producer { endpoint e; };
struct flowc_consumer { endpoint e; };

/* ------------------------------------------------------------------ errors */

static _Thread_local char last_error[200];

int flowc_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *flowc_last_error(void) { return last_error; }

const char *flowc_strerror(int status) {
    switch (status) {
    case FLOWC_OK: return "ok";
    case FLOWC_ETIMEOUT: return "timed out";
    case FLOWC_ECLOSED: return "ring closed";
    case FLOWC_EINVAL: return "invalid argument";
    case FLOWC_ENOENT: return "no such ring or channel";
    case FLOWC_ESYS: return "system call failed";
    case FLOWC_EBADSEG: return "not a valid flowc ring segment";
    case FLOWC_EBROKEN: return "ring broken";
    case FLOWC_ETOOBIG: return "message too large";
    case FLOWC_ERANGE: return "endpoint index out of range";
    case FLOWC_EINTR: return "wait interrupted";
    case FLOWC_ENOMEM: return "out of memory";
    case FLOWC_EBADENV: return "FLOWC_CHANNELS missing or malformed";
    default: return "unknown status";
    }
}

/* ------------------------------------------------------------------ process identity and liveness */

static pid_t self_pid; /* getpid() is a syscall: cached, and refreshed in a forked child */
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;

static void refresh_pid(void) { STORE_RLX(&self_pid, getpid()); }

static void init_pid(void) {
    refresh_pid();
    pthread_atfork(NULL, NULL, refresh_pid); /* a forked producer records its own pid, not its parent's */
}

/* Whether `pid` may still publish: 0 for no process, a zombie (killed but not yet reaped) or pid <= 0 (kill()
 * would address a process group), 1 otherwise (also for another user's process, EPERM). Slow path only. */
static int pid_alive(int32_t pid) {
    if (pid <= 0) return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
    char path[40], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *paren = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

/* ------------------------------------------------------------------ layout and header checks */

static uint64_t layout_data_offset(uint64_t producers, uint64_t consumers) {
    uint64_t end = sizeof(ring_hdr) + producers * sizeof(prod_line) + consumers * sizeof(cons_line);
    return (end + 4095u) & ~(uint64_t)4095u; /* page-align the data so huge/small pages map it cleanly */
}

static inline uint64_t rec_size(uint64_t len) { return FLOWC_RECORD_HEADER + ((len + 7u) & ~(uint64_t)7u); }

/* Checks a copy of a segment's header against what this process owns: the length of the mapping it was given
 * and the layout it computes itself. Every later access is bounded by these fields, so a corrupt or hostile
 * header is refused here instead of steering reads and writes outside the mapping. Returns NULL or why not. */
static const char *check_meta(const meta_t *m, uint64_t len) {
    if (len < sizeof(ring_hdr)) return "segment smaller than a ring header";
    if (m->magic != FLOWC_RING_MAGIC) return "bad magic";
    if (m->version != FLOWC_RING_VERSION) return "unsupported version";
    if (m->flags & ~(uint32_t)(FLOWC_RING_FLAG_DROP_OLDEST | FLOWC_RING_FLAG_HUGE_PAGES | FLOWC_RING_FLAG_SHARED))
        return "unknown flags";
    if ((m->flags & FLOWC_RING_FLAG_SHARED) && (m->flags & FLOWC_RING_FLAG_DROP_OLDEST))
        return "shared delivery with drop_oldest";
    /* bounds the endpoint lines (and the multiplications in layout_data_offset) */
    if (m->producers < 1 || m->producers > FLOWC_MAX_ENDS || m->consumers < 1 || m->consumers > FLOWC_MAX_ENDS)
        return "producer or consumer count out of range";
    /* the data starts where this process computes it, never where the segment says */
    if (m->data_offset != layout_data_offset(m->producers, m->consumers)) return "data offset does not match layout";
    /* capacity 0 would divide by zero; unaligned capacity would let a record header straddle the end */
    if (m->capacity < FLOWC_MIN_CAPACITY || m->capacity % 8) return "bad capacity";
    /* written as a subtraction so that data_offset + capacity cannot wrap around */
    if (m->data_offset > len || m->capacity > len - m->data_offset) return "capacity exceeds the segment";
    /* max_message first, so that rec_size() cannot wrap; a record must fit whatever the wrap leaves free */
    if (m->max_message > m->capacity / 4 || rec_size(m->max_message) > m->capacity / 4) return "bad max_message";
    if (m->spin_ns > FLOWC_MAX_BUDGET_NS || m->yield_ns > FLOWC_MAX_BUDGET_NS) return "bad spin or yield budget";
    return NULL;
}

int flowc_ring_from_memory(void *base, size_t len, flowc_ring **out) {
    if (base == NULL || out == NULL) return flowc_fail(FLOWC_EINVAL, "no segment memory");
    meta_t m;
    memset(&m, 0, sizeof m);
    /* ACQUIRE on the magic pairs with the creator's RELEASE store of it: a valid magic comes with its header */
    if (len >= sizeof(meta_t)) {
        m.magic = LOAD_ACQ((const uint64_t *)base);
        memcpy((char *)&m + sizeof m.magic, (const char *)base + sizeof m.magic, sizeof m - sizeof m.magic);
    }
    const char *why = check_meta(&m, (uint64_t)len);
    if (why) return flowc_fail(FLOWC_EBADSEG, "not a valid flowc ring segment: %s", why);
    flowc_ring *r = calloc(1, sizeof *r);
    if (r == NULL) return flowc_fail(FLOWC_ENOMEM, "out of memory");
    r->m = m;
    r->h = (ring_hdr *)base;
    r->prods = (prod_line *)((char *)base + sizeof(ring_hdr));
    r->conss = (cons_line *)(r->prods + m.producers);
    r->data = (unsigned char *)base + m.data_offset;
    *out = r;
    return FLOWC_OK;
}

static int map_segment(const char *path, flowc_ring **out) {
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? FLOWC_ENOENT : flowc_fail(FLOWC_ESYS, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
        close(fd);
        return flowc_fail(FLOWC_EBADSEG, "ring segment %s is not a non-empty regular file", path);
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd); /* the mapping keeps the segment */
    if (base == MAP_FAILED) return flowc_fail(FLOWC_ESYS, "cannot map ring segment %s: %s", path, strerror(err));
    int rc = flowc_ring_from_memory(base, (size_t)st.st_size, out);
    if (rc != FLOWC_OK) {
        munmap(base, (size_t)st.st_size);
        return rc;
    }
    (*out)->map_len = (size_t)st.st_size;
    return FLOWC_OK;
}

int flowc_ring_attach(const char *name, flowc_ring **out) {
    static const char *const dirs[] = {"/dev/shm", "/dev/hugepages"};
    if (name == NULL || out == NULL || !name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
        strlen(name) > 255)
        return flowc_fail(FLOWC_EINVAL, "invalid ring name '%s'", name ? name : "(null)");
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        int rc = map_segment(path, out);
        if (rc != FLOWC_ENOENT) return rc;
    }
    return flowc_fail(FLOWC_ENOENT, "no ring segment named '%s' in /dev/shm or /dev/hugepages", name);
}

void flowc_ring_close(flowc_ring *ring) {
    if (ring == NULL) return;
    if (ring->map_len) munmap(ring->h, ring->map_len);
    free(ring);
}

int flowc_ring_info_of(const flowc_ring *ring, flowc_ring_info *out) {
    if (ring == NULL || out == NULL) return flowc_fail(FLOWC_EINVAL, "no ring");
    const meta_t *m = &ring->m;
    out->capacity = m->capacity;
    out->max_message = m->max_message;
    out->spin_ns = m->spin_ns;
    out->yield_ns = m->yield_ns;
    out->producers = m->producers;
    out->consumers = m->consumers;
    out->drop_oldest = (m->flags & FLOWC_RING_FLAG_DROP_OLDEST) != 0;
    out->huge_pages = (m->flags & FLOWC_RING_FLAG_HUGE_PAGES) != 0;
    out->shared = (m->flags & FLOWC_RING_FLAG_SHARED) != 0;
    return FLOWC_OK;
}

int flowc_ring_stats_of(const flowc_ring *ring, flowc_ring_stats *out) {
    if (ring == NULL || out == NULL) return flowc_fail(FLOWC_EINVAL, "no ring");
    out->broken = LOAD_ACQ(&ring->h->broken) != 0;
    out->published_bytes = LOAD_ACQ(&ring->h->published);
    out->reserved_bytes = LOAD_ACQ(&ring->h->reserve);
    out->closed = LOAD_ACQ(&ring->h->closed) != 0;
    return FLOWC_OK;
}

int flowc_ring_producer_counters(const flowc_ring *ring, uint32_t index, flowc_producer_counters *out) {
    if (ring == NULL || out == NULL) return flowc_fail(FLOWC_EINVAL, "no ring");
    if (index >= ring->m.producers) return flowc_fail(FLOWC_ERANGE, "producer index %u out of range", index);
    out->sent = LOAD_RLX(&ring->prods[index].sent);
    out->backpressure_waits = LOAD_RLX(&ring->prods[index].bp_waits);
    return FLOWC_OK;
}

int flowc_ring_consumer_counters(const flowc_ring *ring, uint32_t index, flowc_consumer_counters *out) {
    if (ring == NULL || out == NULL) return flowc_fail(FLOWC_EINVAL, "no ring");
    if (index >= ring->m.consumers) return flowc_fail(FLOWC_ERANGE, "consumer index %u out of range", index);
    out->received = LOAD_RLX(&ring->conss[index].received);
    out->dropped = LOAD_RLX(&ring->conss[index].dropped);
    out->cursor = LOAD_ACQ(&ring->conss[index].cursor);
    return FLOWC_OK;
}

/* ------------------------------------------------------------------ segment-level operations */

int flowc_ring_layout_size(uint64_t capacity, uint32_t producers, uint32_t consumers, uint64_t *out) {
    if (out == NULL || producers > FLOWC_MAX_ENDS || consumers > FLOWC_MAX_ENDS ||
        capacity > UINT64_MAX - layout_data_offset(producers, consumers))
        return flowc_fail(FLOWC_EINVAL, "invalid ring geometry");
    *out = layout_data_offset(producers, consumers) + capacity;
    return FLOWC_OK;
}

int flowc_ring_create_in(void *base, size_t len, const flowc_ring_params *p) {
    if (base == NULL || p == NULL) return flowc_fail(FLOWC_EINVAL, "invalid ring geometry");
    uint64_t np = p->producers, nc = p->consumers, cap = p->capacity, maxmsg = p->max_message;
    /* the same limits an attacher checks (check_meta), so that every segment made here can be attached */
    if (np < 1 || nc < 1 || np > FLOWC_MAX_ENDS || nc > FLOWC_MAX_ENDS || cap % 8 || cap < FLOWC_MIN_CAPACITY ||
        cap > UINT64_MAX - layout_data_offset(np, nc) || maxmsg > cap / 4 || rec_size(maxmsg) > cap / 4 ||
        p->spin_ns > FLOWC_MAX_BUDGET_NS || p->yield_ns > FLOWC_MAX_BUDGET_NS || (p->shared && p->drop_oldest))
        return flowc_fail(FLOWC_EINVAL, "invalid ring geometry");
    uint64_t off = layout_data_offset(np, nc);
    if ((uint64_t)len < off + cap) return flowc_fail(FLOWC_ETOOBIG, "buffer too small for the ring");
    memset(base, 0, off);
    ring_hdr *h = (ring_hdr *)base;
    meta_t m = {0, FLOWC_RING_VERSION,
                (p->drop_oldest ? FLOWC_RING_FLAG_DROP_OLDEST : 0u) | (p->huge_pages ? FLOWC_RING_FLAG_HUGE_PAGES : 0u) |
                    (p->shared ? FLOWC_RING_FLAG_SHARED : 0u),
                cap, (uint32_t)np, (uint32_t)nc, maxmsg, off, p->spin_ns, p->yield_ns};
    h->meta = m;
    cons_line *lines = (cons_line *)((char *)base + sizeof(ring_hdr) + np * sizeof(prod_line));
    for (uint64_t j = 0; j < nc; j++) lines[j].holding = UINT64_MAX;
    /* the magic goes last with RELEASE: an attacher that sees it sees a fully initialised header */
    STORE_REL(&h->meta.magic, FLOWC_RING_MAGIC);
    return FLOWC_OK;
}

static void wake_everyone(ring_hdr *h) {
    __atomic_fetch_add(&h->data_seq, 1u, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&h->space_seq, 1u, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &h->data_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    syscall(SYS_futex, &h->space_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int header_only(const void *base, size_t len) {
    if (base == NULL || len < sizeof(ring_hdr))
        return flowc_fail(FLOWC_EBADSEG, "not a valid flowc ring segment: segment smaller than a ring header");
    return FLOWC_OK;
}

int flowc_segment_wake_all(void *base, size_t len) {
    int rc = header_only(base, len);
    if (rc == FLOWC_OK) wake_everyone((ring_hdr *)base);
    return rc;
}

int flowc_segment_close_writers(void *base, size_t len) {
    int rc = header_only(base, len);
    if (rc != FLOWC_OK) return rc;
    STORE_REL(&((ring_hdr *)base)->closed, 1u);
    wake_everyone((ring_hdr *)base);
    return FLOWC_OK;
}

int flowc_segment_is_closed(const void *base, size_t len, int *closed) {
    int rc = header_only(base, len);
    if (rc == FLOWC_OK && closed) *closed = LOAD_ACQ(&((const ring_hdr *)base)->closed) != 0;
    return rc;
}

int flowc_ring_close_writers(flowc_ring *ring) {
    return ring ? flowc_segment_close_writers(ring->h, sizeof(ring_hdr)) : flowc_fail(FLOWC_EINVAL, "no ring");
}

int flowc_ring_wake_all(flowc_ring *ring) {
    return ring ? flowc_segment_wake_all(ring->h, sizeof(ring_hdr)) : flowc_fail(FLOWC_EINVAL, "no ring");
}

int flowc_ring_is_closed(const flowc_ring *ring) { return ring != NULL && LOAD_ACQ(&ring->h->closed) != 0; }

/* ------------------------------------------------------------------ waiting */

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A call's timeout, made a deadline on the monotonic clock only when the call first has to wait: a call that finds
 * its data or room at once reads no clock. `at` is -1 for none (a negative timeout, or one beyond 30 years: no
 * overflow), DEADLINE_UNSET until a wait needs it. */
typedef struct {
    int64_t timeout_ns;
    int64_t at;
} deadline_t;
#define DEADLINE_UNSET INT64_MIN

static deadline_t deadline_of(int64_t timeout_ns) {
    deadline_t d = {timeout_ns, timeout_ns < 0 || timeout_ns >= 1000000000LL * 1000000000LL ? -1 : DEADLINE_UNSET};
    return d;
}

/* The deadline, fixed at `now` plus the timeout the first time a wait asks; -1 for none. */
static inline int64_t due(deadline_t *d, int64_t now) {
    if (d->at == DEADLINE_UNSET) d->at = now + d->timeout_ns;
    return d->at;
}

static inline int expired(deadline_t *d, int64_t now) {
    int64_t at = due(d, now);
    return at >= 0 && now >= at;
}

/* A wait's first polls go flat out, with no `pause` between them: a peer on another core answers within them, and
 * one `pause` lasts about as long as a cache-line transfer on recent x86 cores (~140 cycles), so it would delay
 * seeing the answer by up to that much. Later polls pause (kinder to a hyper-threaded sibling and to power). */
#define EAGER_POLLS 512u

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void *block_begin(endpoint *e) { return e->hooks.block_begin ? e->hooks.block_begin(e->hooks.ctx) : NULL; }

static void block_end(endpoint *e, void *state) {
    if (e->hooks.block_end) e->hooks.block_end(e->hooks.ctx, state);
}

static int interrupted(endpoint *e) { return e->hooks.interrupted ? e->hooks.interrupted(e->hooks.ctx) : 0; }

/* A full barrier: stores before it are visible before loads after it. On x86-64 a locked add to the stack, as
 * Linux's smp_mb(): the same ordering for ordinary memory as `mfence`, at a fraction of its cost. */
#if defined(__SANITIZE_THREAD__)
#define FLOWC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FLOWC_TSAN 1
#endif
#endif

static inline void full_barrier(void) {
#if defined(__x86_64__) && !defined(FLOWC_TSAN) /* ThreadSanitizer knows the fence, not the locked add */
    __asm__ __volatile__("lock addl $0, -4(%%rsp)" ::: "memory", "cc");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

static void doorbell_ring(uint32_t *seq, uint32_t *waiters) {
    /* Pairs with the waiter's fetch_add + fence: one side always sees the other's store (Dekker). */
    full_barrier();
    if (LOAD_RLX(waiters) != 0) {
        __atomic_fetch_add(seq, 1u, __ATOMIC_RELEASE);
        syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
}

/* Sleeps on a doorbell (for at most `max_ns`) while the word at `word` still holds `value`: the waiter side of the
 * Dekker pairing in doorbell_ring. Inside block_begin/block_end, like every wait that blocks. */
static void sleep_on_doorbell(endpoint *e, uint32_t *seq, uint32_t *waiters, const uint64_t *word, uint64_t value,
                              int64_t max_ns) {
    if (max_ns <= 0) return;
    __atomic_fetch_add(waiters, 1u, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t s = LOAD_ACQ(seq);
    if (LOAD_ACQ(word) == value) {
        struct timespec ts = {(time_t)(max_ns / 1000000000LL), (long)(max_ns % 1000000000LL)};
        void *state = block_begin(e);
        syscall(SYS_futex, seq, FUTEX_WAIT, s, &ts, NULL, 0);
        block_end(e, state);
    }
    __atomic_fetch_sub(waiters, 1u, __ATOMIC_SEQ_CST);
}

typedef int (*cond_fn)(endpoint *e, uint64_t arg);

/* Returns 1 when cond holds, 0 on timeout, 2 when the caller must poll its hooks (runs inside block_begin). */
static int slow_wait(endpoint *e, cond_fn cond, uint64_t arg, uint32_t *seq, uint32_t *waiters, deadline_t *dl,
                     int64_t yield_end) {
    for (;;) {
        if (cond(e, arg)) return 1;
        int64_t t = now_ns();
        if (expired(dl, t)) return 0;
        if (t < yield_end) {
            sched_yield(); /* lets a peer sharing this core run instead of waiting out a time slice */
            continue;
        }
        __atomic_fetch_add(waiters, 1u, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        uint32_t s = LOAD_ACQ(seq);
        if (cond(e, arg)) {
            __atomic_fetch_sub(waiters, 1u, __ATOMIC_SEQ_CST);
            return 1;
        }
        int64_t rel = SIGNAL_POLL_NS, at = due(dl, t);
        if (at >= 0 && at - t < rel) rel = at - t;
        struct timespec ts = {(time_t)(rel / 1000000000LL), (long)(rel % 1000000000LL)};
        long r = syscall(SYS_futex, seq, FUTEX_WAIT, s, &ts, NULL, 0);
        int err = errno;
        __atomic_fetch_sub(waiters, 1u, __ATOMIC_SEQ_CST);
        if (r == -1 && (err == EINTR || (err == ETIMEDOUT && rel == SIGNAL_POLL_NS))) return 2;
    }
}

/* Adaptive wait: spin (no hooks: the cheapest wake-up), then yield and block inside block_begin/block_end.
 * Returns 1 when cond holds, 0 on timeout, FLOWC_EINTR when the interrupted hook says so. */
static int wait_for(endpoint *e, cond_fn cond, uint64_t arg, uint32_t *seq, uint32_t *waiters, deadline_t *dl) {
    int64_t start = now_ns();
    int64_t spin_end = start + (int64_t)e->spin_ns;
    unsigned i = 0;
    for (;;) {
        if (cond(e, arg)) return 1;
        if ((i++ & 15u) == 0) {
            int64_t t = i == 1 ? start : now_ns();
            if (expired(dl, t)) return 0;
            if (t >= spin_end) break;
        }
        if (i > EAGER_POLLS) cpu_relax();
    }
    int64_t yield_end = spin_end + (int64_t)e->yield_ns;
    for (;;) {
        void *state = block_begin(e);
        int r = slow_wait(e, cond, arg, seq, waiters, dl, yield_end);
        block_end(e, state);
        if (r != 2) return r;
        if (interrupted(e)) return FLOWC_EINTR;
    }
}

/* Marks the ring broken. Broken is for good: a reservation that can never be published blocks `published`
 * forever, and corrupt positions mean no record can be trusted, so every endpoint fails fast (and is woken to
 * see it) instead of waiting for data or space that cannot come. Returns FLOWC_EBROKEN. */
static int ring_broken(endpoint *e, const char *why, uint64_t pos) {
    STORE_REL(&e->h->broken, 1u);
    wake_everyone(e->h);
    return flowc_fail(FLOWC_EBROKEN, "ring broken: %s (position %llu)", why, (unsigned long long)pos);
}

static int check_not_broken(endpoint *e) {
    if (!LOAD_ACQ(&e->h->broken)) return FLOWC_OK;
    return flowc_fail(FLOWC_EBROKEN, "ring broken: another endpoint found it corrupt or a producer died mid-publish");
}

/* 1 when `published` is no longer stuck at `p`, or a producer that claimed position `p` may still publish it
 * (alive as far as the kernel says); 0 when nobody can. */
static int reserver_alive(endpoint *e, uint64_t p) {
    /* ACQUIRE on `reserve`: a claim is stored before its reserve CAS, so every reservation below the value
     * read here has its claim visible. */
    (void)LOAD_ACQ(&e->h->reserve);
    for (uint32_t j = 0; j < e->nprod; j++) {
        /* our own line's claim is a reservation we published already (we are here, not publishing it) */
        if (j == e->index && e->is_producer) continue;
        /* ACQUIRE pairs with the claim's RELEASE store: a claim that moved on comes with the publish before it */
        if (LOAD_ACQ(&e->prods[j].claim) == p && pid_alive(LOAD_RLX(&e->prods[j].pid))) return 1;
    }
    /* The reserver of p may have published it and claimed its next position while we scanned: then
     * `published` has moved, which the ACQUIRE loads above make visible here. */
    return LOAD_ACQ(&e->h->published) != p;
}

/* The clock of a wait that has stopped spinning: when it started, and when the next liveness check is due (first
 * STALL_CHECK_NS after the start, then every STALL_POLL_NS). */
typedef struct {
    int64_t start, next_check;
} stall_clock;

#define STALL_CLOCK_INIT {-1, 0}

/* Records the time `t`; returns 1 when a liveness check is due now. */
static int stall_check_due(stall_clock *c, int64_t t) {
    if (c->start < 0) {
        c->start = t;
        c->next_check = t + STALL_CHECK_NS;
    }
    if (t < c->next_check) return 0;
    c->next_check = t + STALL_POLL_NS;
    return 1;
}

/* Waits for the producers ahead: until `published == pos` (turn: this producer holds the reservation at pos) or
 * `published > pos` (!turn: make_room waits for the oldest record to be committed). The usual wait is another
 * producer's memcpy, so it spins first; then it yields (sleeping inside block_begin once the wait is long) and
 * every STALL_POLL_NS polls the interrupted hook and asks whether the reserver of the stuck position is still
 * alive. A dead or absent reserver, or a position no legal sequence of commits produces, breaks the ring. Only
 * !turn can give up at the deadline (nothing is held yet); turn gives a live reserver PUBLISH_STALL_NS past the
 * deadline. Returns 1 when reached, 0 on timeout (!turn only), or a negative status. */
static int wait_published(endpoint *e, uint64_t pos, int turn, deadline_t *dl) {
    ring_hdr *H = e->h;
    unsigned spins = 0;
    stall_clock stall = STALL_CLOCK_INIT;
    for (;;) {
        uint64_t p = LOAD_ACQ(&H->published);
        int64_t ahead = (int64_t)(p - pos);
        if (turn ? ahead == 0 : ahead > 0) return 1;
        /* `published` only grows and never passes an unpublished reservation: ours (turn), or the record at a
         * cursor that was read before it (!turn) */
        if (turn ? ahead > 0 : ahead < 0) return ring_broken(e, "published position passed a reservation", p);
        if (++spins <= STALL_SPINS) {
            cpu_relax();
            continue;
        }
        int64_t t = now_ns();
        int check = stall_check_due(&stall, t);
        int late = expired(dl, t);
        if (!turn && late) return 0;
        if (check) {
            if (LOAD_ACQ(&H->broken))
                return turn ? ring_broken(e, "broken while publishing", pos) : check_not_broken(e);
            if (interrupted(e)) {
                if (turn) { /* our reservation is abandoned: nothing can pass it */
                    STORE_REL(&H->broken, 1u);
                    wake_everyone(H);
                }
                return FLOWC_EINTR;
            }
            if (!reserver_alive(e, p)) return ring_broken(e, "the producer reserving this position is gone", p);
            if (turn && late && t - stall.start >= PUBLISH_STALL_NS)
                return ring_broken(e, "a producer stalled mid-publish past the timeout", p);
        }
        if (t - stall.start < STALL_CHECK_NS) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000}; /* a long stall: stop burning the core and let other threads run */
            void *state = block_begin(e);
            nanosleep(&ts, NULL);
            block_end(e, state);
        }
    }
}

/* ------------------------------------------------------------------ endpoints */

static int bind_endpoint(endpoint *e, flowc_ring *r, uint32_t index, int producer) {
    if (r == NULL) return flowc_fail(FLOWC_EINVAL, "no ring");
    memset(e, 0, sizeof *e);
    if (index >= (producer ? r->m.producers : r->m.consumers))
        return flowc_fail(FLOWC_ERANGE, "%s index %u out of range", producer ? "producer" : "consumer", index);
    pthread_once(&pid_once, init_pid);
    e->r = r;
    e->h = r->h;
    e->prods = r->prods;
    e->conss = r->conss;
    e->data = r->data;
    e->nprod = r->m.producers;
    e->ncons = r->m.consumers;
    e->cap = r->m.capacity;
    e->max_message = r->m.max_message;
    e->drop = (r->m.flags & FLOWC_RING_FLAG_DROP_OLDEST) != 0;
    e->shared = (r->m.flags & FLOWC_RING_FLAG_SHARED) != 0;
    e->spin_ns = r->m.spin_ns;
    e->yield_ns = r->m.yield_ns;
    e->index = index;
    e->is_producer = (uint32_t)producer;
    return FLOWC_OK;
}

static int configure(endpoint *e, uint64_t spin_ns, uint64_t yield_ns, const flowc_wait_hooks *hooks) {
    /* a budget beyond a second would spin without polling the hooks (or overflow the clock arithmetic) */
    if (spin_ns > FLOWC_MAX_BUDGET_NS || yield_ns > FLOWC_MAX_BUDGET_NS)
        return flowc_fail(FLOWC_EINVAL, "spin and yield budgets must be at most one second");
    e->spin_ns = spin_ns;
    e->yield_ns = yield_ns;
    if (hooks) e->hooks = *hooks;
    else memset(&e->hooks, 0, sizeof e->hooks);
    return FLOWC_OK;
}

int flowc_producer_open(flowc_ring *ring, uint32_t index, flowc_producer **out) {
    if (out == NULL) return flowc_fail(FLOWC_EINVAL, "no output handle");
    flowc_producer *p = malloc(sizeof *p);
    if (p == NULL) return flowc_fail(FLOWC_ENOMEM, "out of memory");
    int rc = bind_endpoint(&p->e, ring, index, 1);
    if (rc != FLOWC_OK) {
        free(p);
        return rc;
    }
    *out = p;
    return FLOWC_OK;
}

int flowc_consumer_open(flowc_ring *ring, uint32_t index, flowc_consumer **out) {
    if (out == NULL) return flowc_fail(FLOWC_EINVAL, "no output handle");
    flowc_consumer *c = malloc(sizeof *c);
    if (c == NULL) return flowc_fail(FLOWC_ENOMEM, "out of memory");
    int rc = bind_endpoint(&c->e, ring, index, 0);
    if (rc != FLOWC_OK) {
        free(c);
        return rc;
    }
    *out = c;
    return FLOWC_OK;
}

void flowc_producer_close(flowc_producer *p) { free(p); }
void flowc_consumer_close(flowc_consumer *c) { free(c); }

int flowc_producer_configure(flowc_producer *p, uint64_t spin_ns, uint64_t yield_ns, const flowc_wait_hooks *hooks) {
    return p ? configure(&p->e, spin_ns, yield_ns, hooks) : flowc_fail(FLOWC_EINVAL, "no producer");
}

int flowc_consumer_configure(flowc_consumer *c, uint64_t spin_ns, uint64_t yield_ns, const flowc_wait_hooks *hooks) {
    return c ? configure(&c->e, spin_ns, yield_ns, hooks) : flowc_fail(FLOWC_EINVAL, "no consumer");
}

uint64_t flowc_producer_max_message(const flowc_producer *p) { return p ? p->e.max_message : 0; }

/* ------------------------------------------------------------------ producer */

static int space_ok(endpoint *e, uint64_t end) {
    if ((int64_t)(end - e->cached) <= (int64_t)e->cap) return 1;
    /* shutdown: stop waiting, the send reports failure; broken: stop waiting, the send fails */
    if (LOAD_ACQ(&e->h->closed) || LOAD_ACQ(&e->h->broken)) return 1;
    uint64_t low = UINT64_MAX;
    for (uint32_t j = 0; j < (e->shared ? 1u : e->ncons); j++) {
        /* ACQUIRE: the consumer's reads of the space happen before we overwrite it */
        uint64_t c = LOAD_ACQ(&e->conss[j].cursor);
        if (c < low) low = c;
    }
    e->cached = low;
    return (int64_t)(end - low) <= (int64_t)e->cap;
}

/* drop_oldest: move every consumer that is more than a ring behind past its oldest records.
 * Returns 1 when there is room, 0 on timeout, or a negative status. */
static int make_room(endpoint *e, uint64_t end, deadline_t *dl) {
    for (uint32_t j = 0; j < e->ncons; j++) {
        cons_line *cl = &e->conss[j];
        for (;;) {
            uint64_t c = LOAD_ACQ(&cl->cursor);
            if ((int64_t)(end - c) <= (int64_t)e->cap) break;
            /* every earlier reservation left this cursor at most a ring behind its end (<= h), and our record is
             * at most half a ring with its pad: further behind is corrupt (and would loop for a long time) */
            if ((int64_t)(end - c) > 2 * (int64_t)e->cap) {
                /* h was loaded relaxed: ACQUIRE on `reserve` orders us after the reserver of h, which moved the
                 * cursors first, before a stale cursor is taken for a corrupt one */
                (void)LOAD_ACQ(&e->h->reserve);
                if ((int64_t)(end - LOAD_ACQ(&cl->cursor)) > 2 * (int64_t)e->cap)
                    return ring_broken(e, "consumer cursor far behind", c);
                continue;
            }
            /* an unaligned cursor would put a record header across the end of the data area */
            if (c & 7u) return ring_broken(e, "unaligned consumer cursor", c);
            /* signed, like every position comparison: wait_published agrees, so this cannot loop without waiting */
            if ((int64_t)(LOAD_ACQ(&e->h->published) - c) <= 0) {
                /* the oldest record is still being written by another producer: it commits soon */
                int r = wait_published(e, c, 0, dl);
                if (r <= 0) return r;
                continue;
            }
            uint64_t off = c % e->cap; /* cap >= FLOWC_MIN_CAPACITY, aligned: off + record header <= cap */
            uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
            uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
            uint64_t r = (flags & FLOWC_RECORD_PAD) ? e->cap - off : rec_size(len);
            if (len > e->max_message || r > e->cap - off) {
                /* Torn read: another producer moved this cursor and overwrote the record; it moved the cursor
                 * before writing (see the RELEASE fence in produce), so an unchanged cursor means a corrupt
                 * record rather than a race, and retrying would spin forever. */
                __atomic_thread_fence(__ATOMIC_ACQUIRE);
                if (LOAD_RLX(&cl->cursor) == c) return ring_broken(e, "corrupt record length", c);
                continue;
            }
            if (__atomic_compare_exchange_n(&cl->cursor, &c, c + r, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                if (!(flags & FLOWC_RECORD_PAD)) __atomic_fetch_add(&cl->dropped, 1u, __ATOMIC_RELAXED);
            }
        }
    }
    return 1;
}

/* Asks for the line at `p` in exclusive state ahead of a store to it, so its ownership transfer overlaps the
 * payload's instead of following it (stores leave the store buffer in order). A hint: no effect on the contents. */
static inline void prefetch_for_write(const void *p) {
#if defined(__x86_64__)
    __asm__ __volatile__("prefetchw (%0)" : : "r"(p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

/* Returns 1 sent, 0 timed out, FLOWC_ECLOSED, or a negative status. */
static int produce(endpoint *e, const void *src, uint64_t len, deadline_t *dl) {
    ring_hdr *H = e->h;
    prod_line *pl = &e->prods[e->index];
    uint64_t rec = rec_size(len), h, end, pad;
    int waited = 0;
    for (;;) {
        if (LOAD_ACQ(&H->closed)) return FLOWC_ECLOSED; /* producers are done: refuse rather than block */
        int rc = check_not_broken(e);
        if (rc != FLOWC_OK) return rc;
        h = LOAD_RLX(&H->reserve);
        /* positions are multiples of 8 (records are padded): an unaligned one would put a record header across
         * the end of the data area */
        if (h & 7u) return ring_broken(e, "unaligned reserve position", h);
        uint64_t off = h % e->cap;
        pad = off + rec > e->cap ? e->cap - off : 0;
        end = h + pad + rec;
        if (e->drop) {
            int r = make_room(e, end, dl);
            if (r <= 0) return r;
        } else if (!space_ok(e, end)) {
            /* the reservation is at most a ring ahead of the slowest cursor, and a record is at most a quarter
             * of a ring: further apart, the positions are corrupt and space would never come */
            if ((int64_t)(end - e->cached) > 2 * (int64_t)e->cap) {
                (void)LOAD_ACQ(&H->reserve); /* as in make_room: see the cursors the reserver of h saw */
                if (!space_ok(e, end) && (int64_t)(end - e->cached) > 2 * (int64_t)e->cap)
                    return ring_broken(e, "reserve position too far ahead of the cursors", h);
                continue;
            }
            if (expired(dl, now_ns())) return 0;
            waited = 1;
            int r = wait_for(e, space_ok, end, &H->space_seq, &H->space_waiters, dl);
            if (r <= 0) return r;
            continue;
        }
        /* The claim precedes the CAS (so it is visible with any reservation at or after h; see reserver_alive);
         * both are stores to this producer's own line. RELEASE orders our last publish before the new claim (a
         * plain store on x86-64). */
        STORE_RLX(&pl->pid, (int32_t)LOAD_RLX(&self_pid));
        STORE_REL(&pl->claim, h);
        if (e->nprod == 1 && !e->drop) {
            /* The ring's only producer: nobody else moves `reserve`, so no compare-and-swap (a locked instruction
             * on the path of every send). RELEASE, as the CAS: whoever reads the new reservation sees the claim. */
            STORE_REL(&H->reserve, end);
            break;
        }
        /* ACQ_REL: later payload stores stay after the claim; drop_oldest readers re-validate by cursor CAS */
        if (__atomic_compare_exchange_n(&H->reserve, &h, end, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) break;
    }
    /* drop_oldest: the cursors this producer moved (or saw moved) past [h, end) are ordered before its writes
     * there, so a reader that sees the new bytes and then its old cursor knows the record is corrupt, not torn.
     * A compiler barrier on x86-64. */
    if (e->drop) __atomic_thread_fence(__ATOMIC_RELEASE);
    prefetch_for_write(&H->published);
    uint64_t off = h % e->cap;
    if (pad) {
        STORE_RLX((uint32_t *)(e->data + off), 0u);
        STORE_RLX((uint32_t *)(e->data + off + 4), FLOWC_RECORD_PAD);
        off = 0;
    }
    STORE_RLX((uint32_t *)(e->data + off), (uint32_t)len);
    STORE_RLX((uint32_t *)(e->data + off + 4), 0u);
    if (len) memcpy(e->data + off + FLOWC_RECORD_HEADER, src, len);
    /* Commit in reservation order so `published` is one counter; only other producers' memcpy is awaited. */
    if (LOAD_ACQ(&H->published) != h) {
        int r = wait_published(e, h, 1, dl);
        if (r < 0) return r;
    }
    STORE_REL(&H->published, end);
    STORE_RLX(&pl->sent, LOAD_RLX(&pl->sent) + 1);
    if (waited) STORE_RLX(&pl->bp_waits, LOAD_RLX(&pl->bp_waits) + 1);
    doorbell_ring(&H->data_seq, &H->data_waiters);
    return 1;
}

int flowc_send(flowc_producer *p, const void *data, size_t len, int64_t timeout_ns) {
    if (p == NULL || (data == NULL && len)) return flowc_fail(FLOWC_EINVAL, "no producer or no data");
    if ((uint64_t)len > p->e.max_message)
        return flowc_fail(FLOWC_ETOOBIG, "message of %zu bytes exceeds this ring's maximum of %llu", len,
                    (unsigned long long)p->e.max_message);
    deadline_t dl = deadline_of(timeout_ns);
    int r = produce(&p->e, data, (uint64_t)len, &dl);
    return r == 1 ? FLOWC_OK : r == 0 ? FLOWC_ETIMEOUT : r;
}

/* ------------------------------------------------------------------ consumer */

/* Loads one word at `p` and discards it: a hardware read that is not a C access (it cannot race with a producer's
 * memcpy in the language's model, and ThreadSanitizer does not see it). A prefetch hint elsewhere. */
static inline void touch(const void *p) {
#if defined(__x86_64__)
    __asm__ __volatile__("movl (%0), %%eax" : : "r"(p) : "eax");
#elif defined(__aarch64__)
    uint32_t ignored;
    __asm__ __volatile__("ldr %w0, [%1]" : "=r"(ignored) : "r"(p));
#else
    __builtin_prefetch(p, 0, 3);
#endif
}

/* While a consumer waits, it also reads the first two cache lines of the record it will read next and ignores what
 * it finds (nothing is trusted before `published` says so). The producer's write there invalidates them, so the spin
 * round that sees `published` move has already started fetching the new record: one cache-line transfer fewer on
 * the critical path (a prefetch hint measured no better than nothing). Only inside the data area (off + 64 < cap). */
static inline void warm_next_record(const endpoint *e, uint64_t cursor) {
    uint64_t off = cursor % e->cap;
    touch(e->data + off);
    if (off + 64u < e->cap) touch(e->data + ((off + 64u) & ~(uint64_t)63u));
}

static int data_ready(endpoint *e, uint64_t cursor) {
    warm_next_record(e, cursor);
    return (e->cached = LOAD_ACQ(&e->h->published)) != cursor || LOAD_ACQ(&e->h->closed) || LOAD_ACQ(&e->h->broken);
}

static inline int advance(endpoint *e, cons_line *cl, uint64_t c, uint64_t to) {
    if (e->drop) return __atomic_compare_exchange_n(&cl->cursor, &c, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    STORE_REL(&cl->cursor, to); /* RELEASE: our reads of the record happen before a producer reuses it */
    doorbell_ring(&e->h->space_seq, &e->h->space_waiters);
    return 1;
}

/* ------------------------------------------------------------------ shared delivery (work sharing) */

static int shared_ready(endpoint *e, uint64_t taken) {
    return LOAD_ACQ(&e->h->published) != taken || LOAD_ACQ(&e->conss[0].taken) != taken ||
           LOAD_ACQ(&e->h->closed) || LOAD_ACQ(&e->h->broken);
}

/* 1 when the consumer that took the record at `pos` may still release it (alive as far as the kernel says), or
 * the release position moved on meanwhile; 0 when it died holding it. A holder stores `holding` before its claim
 * CAS on `taken`, and ours came later in that CAS chain, so its `holding` is visible here. */
static int holder_alive(endpoint *e, uint64_t pos) {
    for (uint32_t j = 0; j < e->ncons; j++)
        if (LOAD_ACQ(&e->conss[j].holding) == pos && pid_alive(LOAD_RLX(&e->conss[j].holder_pid))) return 1;
    return LOAD_ACQ(&e->conss[0].cursor) != pos;
}

/* Releases [pos, next) once every record before it is released (consumers finish copying in any order; the
 * group's release position moves in claim order, like `published` for producers). A record whose taker died
 * while copying it is skipped on its behalf and counted as dropped. The wait has no deadline (the record is ours
 * and must be released in order), so it ends on what can never be released: a release position no legal sequence
 * of releases produces (the ring is corrupt: broken here), or a ring another endpoint marked broken.
 * Returns 1, or a negative status. */
static int release_shared(endpoint *e, uint64_t pos, uint64_t next) {
    cons_line *g = &e->conss[0];
    unsigned spins = 0;
    stall_clock stall = STALL_CLOCK_INIT;
    for (;;) {
        uint64_t r = LOAD_ACQ(&g->cursor);
        if (r == pos) break;
        if ((int64_t)(r - pos) > 0 || (r & 7u)) return ring_broken(e, "shared release position passed a claim", r);
        /* Producers publish at most a ring past the release position (which only grows), and we took a published
         * record: further behind our claim, the positions are corrupt, and what lies between would be skipped as
         * records of dead holders for ever. */
        if ((int64_t)(pos - r) > (int64_t)e->cap)
            return ring_broken(e, "shared release position more than a ring behind", r);
        if (++spins <= STALL_SPINS) {
            cpu_relax();
            continue;
        }
        /* broken by another endpoint: nobody releases on a broken ring (one load, past the spins) */
        int rc = check_not_broken(e);
        if (rc != FLOWC_OK) return rc;
        int64_t t = now_ns();
        if (stall_check_due(&stall, t)) {
            if (!holder_alive(e, r)) {
                uint64_t off = r % e->cap;
                uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
                uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
                uint64_t size = (flags & FLOWC_RECORD_PAD) ? e->cap - off : rec_size(len);
                if (len > e->max_message || size > e->cap - off) return ring_broken(e, "corrupt record length", r);
                if (__atomic_compare_exchange_n(&g->cursor, &r, r + size, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
                    if (!(flags & FLOWC_RECORD_PAD)) __atomic_fetch_add(&e->conss[e->index].dropped, 1u, __ATOMIC_RELAXED);
                    doorbell_ring(&e->h->space_seq, &e->h->space_waiters);
                }
                continue;
            }
        }
        if (t - stall.start < RELEASE_YIELD_NS) {
            sched_yield(); /* the taker ahead is usually still copying on the other core */
            continue;
        }
        /* Longer: the taker ahead was preempted. Sleep on the space doorbell (every release rings it) so this
         * core goes to it instead of to our spinning; wake at the next liveness check at the latest. */
        sleep_on_doorbell(e, &e->h->space_seq, &e->h->space_waiters, &g->cursor, r, stall.next_check - t);
    }
    STORE_REL(&g->cursor, next); /* RELEASE: our copy of the record happens before a producer reuses the space */
    doorbell_ring(&e->h->space_seq, &e->h->space_waiters);
    return 1;
}

/* A shared ring: take the record at the group's `taken` position with a CAS, copy it, release it in order. */
static int consume_shared(endpoint *e, flowc_recv_sink sink, void *ctx, deadline_t *dl) {
    ring_hdr *H = e->h;
    cons_line *g = &e->conss[0], *me = &e->conss[e->index];
    STORE_RLX(&me->holder_pid, (int32_t)LOAD_RLX(&self_pid));
    for (;;) {
        uint64_t t = LOAD_ACQ(&g->taken);
        uint64_t p = LOAD_ACQ(&H->published);
        /* loaded after `taken`, which only moves up to what was published, `published` is at or past it */
        if ((int64_t)(p - t) < 0) return ring_broken(e, "shared position ahead of the published position", t);
        if (p == t) {
            int rc = check_not_broken(e);
            if (rc != FLOWC_OK) return rc;
            if (LOAD_ACQ(&H->closed)) {
                if (LOAD_ACQ(&H->published) == LOAD_ACQ(&g->taken)) return FLOWC_ECLOSED; /* closed and drained */
                continue;
            }
            int r = wait_for(e, shared_ready, t, &H->data_seq, &H->data_waiters, dl);
            if (r < 0) return r;
            if (r == 0) return FLOWC_ETIMEOUT;
            continue;
        }
        if ((t & 7u) || (int64_t)(p - t) > (int64_t)e->cap) {
            /* `t` may be stale: others took and released past it, and producers published a ring more, between
             * our two loads. Corrupt only if `taken` still says t. */
            if (LOAD_ACQ(&g->taken) != t) continue;
            return ring_broken(e, (t & 7u) ? "unaligned shared position" : "shared position more than a ring behind", t);
        }
        uint64_t off = t % e->cap;
        uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
        uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
        uint64_t size = (flags & FLOWC_RECORD_PAD) ? e->cap - off : rec_size(len);
        if (len > e->max_message || size > e->cap - off) {
            /* another consumer may have taken it and the space been reused since we loaded `taken` */
            if (LOAD_ACQ(&g->taken) != t) continue;
            return ring_broken(e, "corrupt record length", t);
        }
        STORE_RLX(&me->holding, t);
        uint64_t expect = t;
        /* A successful CAS means nobody took t before us, so nothing released it and its bytes are as read. */
        if (!__atomic_compare_exchange_n(&g->taken, &expect, t + size, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            STORE_RLX(&me->holding, UINT64_MAX);
            continue;
        }
        int rc = FLOWC_OK;
        if (!(flags & FLOWC_RECORD_PAD)) {
            void *dest = NULL;
            rc = sink(ctx, len, &dest);
            if (rc == FLOWC_OK && len) memcpy(dest, e->data + off + FLOWC_RECORD_HEADER, len);
        }
        int released = release_shared(e, t, t + size);
        STORE_RLX(&me->holding, UINT64_MAX);
        if (released < 0) return released;
        if (flags & FLOWC_RECORD_PAD) continue;
        if (rc != FLOWC_OK) {
            /* taken and released, but not delivered (the caller's buffer was too small): lost to the group */
            __atomic_fetch_add(&me->dropped, 1u, __ATOMIC_RELAXED);
            return rc;
        }
        STORE_RLX(&me->received, LOAD_RLX(&me->received) + 1);
        return FLOWC_OK;
    }
}

/* One message through `sink`: FLOWC_OK, FLOWC_ETIMEOUT, FLOWC_ECLOSED (closed and drained), or a negative
 * status (the sink's own included). */
static int consume(endpoint *e, flowc_recv_sink sink, void *ctx, deadline_t *dl) {
    if (e->shared) return consume_shared(e, sink, ctx, dl);
    ring_hdr *H = e->h;
    cons_line *cl = &e->conss[e->index];
    for (;;) {
        uint64_t c = e->drop ? LOAD_ACQ(&cl->cursor) : LOAD_RLX(&cl->cursor);
        if ((int64_t)(c - e->cached) >= 0) e->cached = LOAD_ACQ(&H->published);
        /* Loaded after the cursor, `published` can only be at or past it; behind it the positions are corrupt
         * (and waiting for "published != cursor" would return at once, forever). */
        if ((int64_t)(e->cached - c) < 0) {
            e->cached = LOAD_ACQ(&H->published);
            if ((int64_t)(e->cached - c) < 0) return ring_broken(e, "consumer cursor ahead of the published position", c);
        }
        if (c == e->cached) {
            int rc = check_not_broken(e);
            if (rc != FLOWC_OK) return rc;
            if (LOAD_ACQ(&H->closed)) {
                if (LOAD_ACQ(&H->published) == c) return FLOWC_ECLOSED; /* closed and drained */
                continue;
            }
            int r = wait_for(e, data_ready, c, &H->data_seq, &H->data_waiters, dl);
            if (r < 0) return r;
            if (r == 0) return FLOWC_ETIMEOUT;
            continue;
        }
        /* an unaligned cursor would put a record header across the end of the data area */
        if (c & 7u) return ring_broken(e, "unaligned consumer cursor", c);
        /* backpressure: producers never pass a cursor, so more than a ring of unread bytes is corrupt (it once
         * made a sink count 10 million messages of 30 thousand sent). drop_oldest: producers move a lagging
         * cursor before they publish, so a reload sees it moved, or the positions are corrupt. */
        if ((int64_t)(e->cached - c) > (int64_t)e->cap) {
            if (e->drop && LOAD_ACQ(&cl->cursor) != c) continue;
            return ring_broken(e, "consumer cursor more than a ring behind", c);
        }
        uint64_t off = c % e->cap; /* aligned and cap >= FLOWC_MIN_CAPACITY: off + record header <= cap */
        uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
        uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
        if (flags & FLOWC_RECORD_PAD) {
            advance(e, cl, c, c + (e->cap - off));
            continue;
        }
        uint64_t r = rec_size(len);
        /* the length is read from shared memory: bounded by this ring's limit and by the end of the data */
        if (len > e->max_message || r > e->cap - off) {
            if (e->drop) {
                /* Overwritten under us, if a producer moved the cursor (it does so before writing, see the
                 * RELEASE fence in produce); an unchanged cursor means a corrupt record, and retrying it would
                 * spin forever. */
                __atomic_thread_fence(__ATOMIC_ACQUIRE);
                if (LOAD_RLX(&cl->cursor) != c) continue;
            }
            return ring_broken(e, "corrupt record length", c);
        }
        void *dest = NULL;
        int rc = sink(ctx, len, &dest);
        if (rc != FLOWC_OK) return rc;
        if (len) memcpy(dest, e->data + off + FLOWC_RECORD_HEADER, len);
        if (!advance(e, cl, c, c + r)) continue; /* drop_oldest: a producer dropped it while we copied */
        STORE_RLX(&cl->received, LOAD_RLX(&cl->received) + 1);
        return FLOWC_OK;
    }
}

int flowc_recv_with(flowc_consumer *c, flowc_recv_sink sink, void *ctx, int64_t timeout_ns) {
    if (c == NULL || sink == NULL) return flowc_fail(FLOWC_EINVAL, "no consumer or no sink");
    deadline_t dl = deadline_of(timeout_ns);
    return consume(&c->e, sink, ctx, &dl);
}

typedef struct {
    void *buf;
    size_t cap;
    size_t len;
} fixed_buffer;

static int into_fixed(void *ctx, uint32_t len, void **dest) {
    fixed_buffer *b = (fixed_buffer *)ctx;
    b->len = len;
    if (len > b->cap) return flowc_fail(FLOWC_ETOOBIG, "message of %u bytes exceeds the buffer of %zu", len, b->cap);
    *dest = b->buf;
    return FLOWC_OK;
}

int flowc_recv(flowc_consumer *c, void *buf, size_t cap, size_t *len, int64_t timeout_ns) {
    if (buf == NULL && cap) return flowc_fail(FLOWC_EINVAL, "no buffer");
    fixed_buffer b = {buf, cap, 0};
    int rc = flowc_recv_with(c, into_fixed, &b, timeout_ns);
    if (len && (rc == FLOWC_OK || rc == FLOWC_ETOOBIG)) *len = b.len;
    return rc;
}

uint64_t flowc_consumer_pending(const flowc_consumer *c) {
    if (c == NULL) return 0;
    /* a shared ring's consumers all wait for what the group has not taken yet */
    uint64_t cur = c->e.shared ? LOAD_ACQ(&c->e.conss[0].taken) : LOAD_ACQ(&c->e.conss[c->e.index].cursor);
    return LOAD_ACQ(&c->e.h->published) - cur;
}
