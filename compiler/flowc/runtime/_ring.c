/* Shared-memory message rings for flowc actors: the per-message hot path of flowc.runtime.ring.
 *
 * One segment holds a header, one cache line per producer and per consumer, and a byte ring of
 * variable-size records ([u32 len | u32 flags] + payload padded to 8 bytes). Positions are 64-bit byte
 * counters that only grow; a record never straddles the end of the ring (a PAD record fills the gap).
 *
 * Ordering (see README, "The data path: memory ordering"):
 *   producers reserve [h, end) with a CAS on `reserve`, write the record, then wait until `published == h`
 *   and store `published = end` with RELEASE; consumers load `published` with ACQUIRE before reading
 *   records below it, and give space back by storing their `cursor` with RELEASE (CAS in drop_oldest,
 *   where producers also advance slow consumers' cursors past the oldest records).
 * Waiting: spin, then sched_yield, then a non-private futex doorbell (shared between processes); the
 * waker only makes the syscall when a waiter has registered, so the fast path has no syscall.
 *
 * Trust: the segment is written by other processes, so nothing read from it steers a memory access unchecked.
 * The header is copied and checked once when an endpoint binds (check_meta: sizes against the mapping this
 * process was given, the layout it computes itself); positions are checked for alignment and for the order
 * cursor <= published <= reserve where they are read, and record lengths against max_message and the end of the
 * data. What fails a check breaks the ring (a `broken` flag every endpoint sees) and raises RingError.
 * Liveness: every wait honours its deadline and checks signals. Waiting for `published` to reach a position
 * is waiting for another producer; each producer records the position it claims and its pid in its own line,
 * so a stalled waiter finds the reserver and, when it is dead (kill(pid, 0), or a zombie), breaks the ring.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RING_MAGIC 0x31474e4952434c46ULL /* "FLCRING1" little-endian */
#define RING_VERSION 1u
#define F_DROP_OLDEST 1u
#define F_HUGE_PAGES 2u
#define REC_PAD 1u
#define REC_HDR 8u
#define MAX_ENDS 1024u
/* Blocking waits wake at least this often so Ctrl-C and other signals are handled promptly. */
#define SIGNAL_POLL_NS 100000000LL
/* Smallest data area a segment may claim (ring.py's minimum is 256): rules out capacity 0, which every position
 * is divided by, and leaves a quarter of the ring for a record of max_message. */
#define MIN_CAPACITY 64u
/* Upper bound of a segment's spin/yield budgets: a hostile header must not make a waiter spin with the GIL held
 * (signals unchecked) for longer than this, nor overflow `now + budget`. */
#define MAX_BUDGET_NS 1000000000ULL
/* A producer waiting for the producers ahead of it to publish spins this many rounds (a peer's memcpy) before
 * it looks at the clock; the liveness of the reserver it waits for is checked first after STALL_CHECK_NS and
 * then every STALL_POLL_NS (kill(pid, 0): a syscall, so never on the fast path). */
#define STALL_SPINS 64u
#define STALL_CHECK_NS 1000000LL
#define STALL_POLL_NS 10000000LL
/* A producer holding a reservation cannot give it back (commits are in order), so at its deadline it keeps
 * waiting for a live reserver ahead of it for at most this long; past it the ring is declared broken. */
#define PUBLISH_STALL_NS 1000000000LL

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
    uint64_t dropped; /* written by producers (fetch_add) in drop_oldest */
} cons_line;

/* The layout is part of the segment format (RING_VERSION): new fields only go into existing padding. */
_Static_assert(sizeof(meta_t) == 64 && sizeof(ring_hdr) == 384, "ring header layout changed");
_Static_assert(sizeof(prod_line) == 64 && sizeof(cons_line) == 64, "ring endpoint lines changed");

static PyObject *RingError; /* flowc.runtime.ring.RingError: a segment that cannot be trusted or is broken */
static pid_t self_pid;      /* getpid() is a syscall: cached, and refreshed in a forked child */

static void refresh_pid(void) { self_pid = getpid(); }

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

static uint64_t layout_data_offset(uint64_t producers, uint64_t consumers) {
    uint64_t end = sizeof(ring_hdr) + producers * sizeof(prod_line) + consumers * sizeof(cons_line);
    return (end + 4095u) & ~(uint64_t)4095u; /* page-align the data so huge/small pages map it cleanly */
}

static inline uint64_t rec_size(uint64_t len) { return REC_HDR + ((len + 7u) & ~(uint64_t)7u); }

/* Checks a copy of a segment's header against what this process owns: the length of the mapping it was given
 * and the layout it computes itself. Every later access is bounded by these fields, so a corrupt or hostile
 * header is refused here instead of steering reads and writes outside the mapping. Returns NULL or why not. */
static const char *check_meta(const meta_t *m, uint64_t len) {
    if (len < sizeof(ring_hdr)) return "segment smaller than a ring header";
    if (m->magic != RING_MAGIC) return "bad magic";
    if (m->version != RING_VERSION) return "unsupported version";
    if (m->flags & ~(uint32_t)(F_DROP_OLDEST | F_HUGE_PAGES)) return "unknown flags";
    /* bounds the endpoint lines (and the multiplications in layout_data_offset) */
    if (m->producers < 1 || m->producers > MAX_ENDS || m->consumers < 1 || m->consumers > MAX_ENDS)
        return "producer or consumer count out of range";
    /* the data starts where this process computes it, never where the segment says */
    if (m->data_offset != layout_data_offset(m->producers, m->consumers)) return "data offset does not match layout";
    /* capacity 0 would divide by zero; unaligned capacity would let a record header straddle the end */
    if (m->capacity < MIN_CAPACITY || m->capacity % 8) return "bad capacity";
    /* written as a subtraction so that data_offset + capacity cannot wrap around */
    if (m->data_offset > len || m->capacity > len - m->data_offset) return "capacity exceeds the segment";
    /* max_message first, so that rec_size() cannot wrap; a record must fit whatever the wrap leaves free */
    if (m->max_message > m->capacity / 4 || rec_size(m->max_message) > m->capacity / 4) return "bad max_message";
    if (m->spin_ns > MAX_BUDGET_NS || m->yield_ns > MAX_BUDGET_NS) return "bad spin or yield budget";
    return NULL;
}

/* Copies and checks the header of a mapped buffer; the copy is what the caller uses from then on, since the
 * shared header can change under it. Returns 0 or -1 with RingError set. */
static int read_meta(const void *buf, Py_ssize_t len, meta_t *out) {
    if ((size_t)len >= sizeof(meta_t)) memcpy(out, buf, sizeof(meta_t));
    const char *why = check_meta(out, (uint64_t)len);
    if (why) {
        PyErr_Format(RingError, "not a valid flowc ring segment: %s", why);
        return -1;
    }
    return 0;
}

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void doorbell_ring(uint32_t *seq, uint32_t *waiters) {
    /* Pairs with the waiter's fetch_add + fence: one side always sees the other's store (Dekker). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (LOAD_RLX(waiters) != 0) {
        __atomic_fetch_add(seq, 1u, __ATOMIC_RELEASE);
        syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
}

/* ------------------------------------------------------------------ endpoints */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    ring_hdr *h;
    prod_line *prods;
    cons_line *conss;
    unsigned char *data;
    uint64_t cap, max_message, spin_ns, yield_ns;
    /* Last seen min consumer cursor (producer) or `published` (consumer): both only grow, so a stale value is
     * safe and re-reading the shared line only when it says "full"/"empty" keeps cache lines from bouncing. */
    uint64_t cached;
    uint32_t nprod, ncons, drop, index, is_producer;
    /* Inside send/recv. Both can release the GIL while they wait, so another thread could enter the same
     * endpoint (two writers of one claim line or cursor) or release its view (unmapping memory under the
     * waiter); both are refused while this is set. Only touched with the GIL held. */
    int busy;
} Endpoint;

typedef int (*cond_fn)(Endpoint *e, uint64_t arg);

/* Returns 1 when cond holds, 0 on timeout, 2 when the caller must check signals (GIL released). */
static int slow_wait(Endpoint *e, cond_fn cond, uint64_t arg, uint32_t *seq, uint32_t *waiters,
                     int64_t deadline, int64_t yield_end) {
    for (;;) {
        if (cond(e, arg)) return 1;
        int64_t t = now_ns();
        if (deadline >= 0 && t >= deadline) return 0;
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
        int64_t rel = SIGNAL_POLL_NS;
        if (deadline >= 0 && deadline - t < rel) rel = deadline - t;
        struct timespec ts = {(time_t)(rel / 1000000000LL), (long)(rel % 1000000000LL)};
        long r = syscall(SYS_futex, seq, FUTEX_WAIT, s, &ts, NULL, 0);
        int err = errno;
        __atomic_fetch_sub(waiters, 1u, __ATOMIC_SEQ_CST);
        if (r == -1 && (err == EINTR || (err == ETIMEDOUT && rel == SIGNAL_POLL_NS))) return 2;
    }
}

/* Adaptive wait: spin (GIL held, cheapest wake-up), then yield and block with the GIL released.
 * Returns 1 when cond holds, 0 on timeout, -1 with an exception set. */
static int wait_for(Endpoint *e, cond_fn cond, uint64_t arg, uint32_t *seq, uint32_t *waiters, int64_t deadline) {
    int64_t start = now_ns();
    int64_t spin_end = start + (int64_t)e->spin_ns;
    unsigned i = 0;
    for (;;) {
        if (cond(e, arg)) return 1;
        if ((i++ & 15u) == 0) {
            int64_t t = i == 1 ? start : now_ns();
            if (deadline >= 0 && t >= deadline) return 0;
            if (t >= spin_end) break;
        }
        cpu_relax();
    }
    int64_t yield_end = spin_end + (int64_t)e->yield_ns;
    for (;;) {
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = slow_wait(e, cond, arg, seq, waiters, deadline, yield_end);
        Py_END_ALLOW_THREADS
        if (r != 2) return r;
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

static int bind_endpoint(Endpoint *e, PyObject *buf, long index, int producer, double spin_us, double yield_us) {
    if (PyObject_GetBuffer(buf, &e->view, PyBUF_WRITABLE) < 0) return -1;
    e->has_view = 1;
    meta_t m;
    if (read_meta(e->view.buf, e->view.len, &m) < 0) goto fail;
    /* NaN or a budget beyond MAX_BUDGET_NS would spin with the GIL held (or overflow the clock arithmetic) */
    if (!(spin_us < 0 || spin_us * 1000.0 <= (double)MAX_BUDGET_NS) ||
        !(yield_us < 0 || yield_us * 1000.0 <= (double)MAX_BUDGET_NS)) {
        PyErr_SetString(PyExc_ValueError, "spin_us and yield_us must be at most 1000000 (one second)");
        goto fail;
    }
    e->h = (ring_hdr *)e->view.buf;
    e->nprod = m.producers;
    e->ncons = m.consumers;
    e->cap = m.capacity;
    e->max_message = m.max_message;
    e->drop = (m.flags & F_DROP_OLDEST) != 0;
    e->prods = (prod_line *)((char *)e->view.buf + sizeof(ring_hdr));
    e->conss = (cons_line *)(e->prods + e->nprod);
    e->data = (unsigned char *)e->view.buf + m.data_offset;
    e->spin_ns = spin_us < 0 ? m.spin_ns : (uint64_t)(spin_us * 1000.0);
    e->yield_ns = yield_us < 0 ? m.yield_ns : (uint64_t)(yield_us * 1000.0);
    e->cached = 0;
    if (index < 0 || (uint64_t)index >= (producer ? e->nprod : e->ncons)) {
        PyErr_Format(PyExc_IndexError, "%s index %ld out of range", producer ? "producer" : "consumer", index);
        goto fail;
    }
    e->index = (uint32_t)index;
    e->is_producer = (uint32_t)producer;
    return 0;
fail:
    PyBuffer_Release(&e->view);
    e->has_view = 0;
    return -1;
}

static int Endpoint_init(Endpoint *e, PyObject *args, PyObject *kw, int producer) {
    static char *kwlist[] = {"buffer", "index", "spin_us", "yield_us", NULL};
    PyObject *buf;
    long index;
    double spin_us = -1.0, yield_us = -1.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Ol|dd", kwlist, &buf, &index, &spin_us, &yield_us)) return -1;
    if (e->has_view) {
        PyErr_SetString(PyExc_RuntimeError, "endpoint already bound");
        return -1;
    }
    return bind_endpoint(e, buf, index, producer, spin_us, yield_us);
}

static void Endpoint_dealloc(Endpoint *e) {
    if (e->has_view) PyBuffer_Release(&e->view);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Endpoint_release(Endpoint *e, PyObject *Py_UNUSED(ignored)) {
    if (e->busy) {
        PyErr_SetString(PyExc_RuntimeError, "ring endpoint is in use by another thread; release it after its call");
        return NULL;
    }
    if (e->has_view) {
        PyBuffer_Release(&e->view);
        e->has_view = 0;
    }
    Py_RETURN_NONE;
}

static int parse_deadline(PyObject *timeout, int64_t *deadline) {
    *deadline = -1;
    if (timeout == NULL || timeout == Py_None) return 0;
    double t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred()) return -1;
    if (t != t) { /* NaN: converting it to an integer is undefined */
        PyErr_SetString(PyExc_ValueError, "timeout must be a number of seconds, not NaN");
        return -1;
    }
    if (t < 0) t = 0;
    if (t >= 1e9) return 0; /* beyond 30 years (and infinity) is no deadline; the conversion would overflow */
    *deadline = now_ns() + (int64_t)(t * 1e9);
    return 0;
}

static int check_bound(Endpoint *e) {
    if (!e->has_view) {
        PyErr_SetString(PyExc_ValueError, "ring endpoint is closed");
        return -1;
    }
    if (e->busy) {
        PyErr_SetString(PyExc_RuntimeError, "ring endpoint is in use by another thread (one thread per endpoint)");
        return -1;
    }
    return 0;
}

/* Positional-or-keyword `timeout` for METH_FASTCALL|METH_KEYWORDS without the argument-clinic machinery. */
static int fast_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *sig,
                     Py_ssize_t npos, PyObject **data, PyObject **timeout) {
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    *timeout = NULL;
    if (nargs + nkw > npos + 1 || nargs < npos) goto usage; /* data is positional-only */
    if (npos) *data = args[0];
    if (nargs > npos) *timeout = args[npos];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, i)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "timeout") != 0 || *timeout)
            goto usage;
        *timeout = args[nargs + i];
    }
    return 0;
usage:
    PyErr_Format(PyExc_TypeError, "expected %s", sig);
    return -1;
}

/* ------------------------------------------------------------------ producer */

static int space_ok(Endpoint *e, uint64_t end) {
    if ((int64_t)(end - e->cached) <= (int64_t)e->cap) return 1;
    /* shutdown: stop waiting, the send reports failure; broken: stop waiting, the send raises */
    if (LOAD_ACQ(&e->h->closed) || LOAD_ACQ(&e->h->broken)) return 1;
    uint64_t low = UINT64_MAX;
    for (uint32_t j = 0; j < e->ncons; j++) {
        /* ACQUIRE: the consumer's reads of the space happen before we overwrite it */
        uint64_t c = LOAD_ACQ(&e->conss[j].cursor);
        if (c < low) low = c;
    }
    e->cached = low;
    return (int64_t)(end - low) <= (int64_t)e->cap;
}

static void wake_everyone(ring_hdr *h);

/* Marks the ring broken and raises RingError. Broken is for good: a reservation that can never be published
 * blocks `published` forever, and corrupt positions mean no record can be trusted, so every endpoint fails
 * fast (and is woken to see it) instead of waiting for data or space that cannot come. Returns -1. */
static int ring_broken(Endpoint *e, const char *why, uint64_t pos) {
    STORE_REL(&e->h->broken, 1u);
    wake_everyone(e->h);
    PyErr_Format(RingError, "ring broken: %s (position %llu)", why, (unsigned long long)pos);
    return -1;
}

static int check_not_broken(Endpoint *e) {
    if (!LOAD_ACQ(&e->h->broken)) return 0;
    PyErr_SetString(RingError, "ring broken: another endpoint found it corrupt or a producer died mid-publish");
    return -1;
}

/* 1 when `published` is no longer stuck at `p`, or a producer that claimed position `p` may still publish it
 * (alive as far as the kernel says); 0 when nobody can. */
static int reserver_alive(Endpoint *e, uint64_t p) {
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

/* Waits for the producers ahead: until `published == pos` (turn: this producer holds the reservation at pos) or
 * `published > pos` (!turn: make_room waits for the oldest record to be committed). The usual wait is another
 * producer's memcpy, so it spins first; then it yields (with the GIL released once the wait is long) and every
 * STALL_POLL_NS checks signals and asks whether the reserver of the stuck position is still alive. A dead or
 * absent reserver, or a position no legal sequence of commits produces, breaks the ring. Only !turn can give
 * up at the deadline (nothing is held yet); turn gives a live reserver PUBLISH_STALL_NS past the deadline.
 * Returns 1 when reached, 0 on timeout (!turn only), -1 with an exception set. */
static int wait_published(Endpoint *e, uint64_t pos, int turn, int64_t deadline) {
    ring_hdr *H = e->h;
    unsigned spins = 0;
    int64_t start = -1, next_check = 0;
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
        if (start < 0) {
            start = t;
            next_check = t + STALL_CHECK_NS;
        }
        if (!turn && deadline >= 0 && t >= deadline) return 0;
        if (t >= next_check) {
            next_check = t + STALL_POLL_NS;
            if (LOAD_ACQ(&H->broken))
                return turn ? ring_broken(e, "broken while publishing", pos) : check_not_broken(e);
            if (PyErr_CheckSignals() < 0) {
                if (turn) { /* our reservation is abandoned: nothing can pass it */
                    STORE_REL(&H->broken, 1u);
                    wake_everyone(H);
                }
                return -1;
            }
            if (!reserver_alive(e, p)) return ring_broken(e, "the producer reserving this position is gone", p);
            if (turn && deadline >= 0 && t >= deadline && t - start >= PUBLISH_STALL_NS)
                return ring_broken(e, "a producer stalled mid-publish past the timeout", p);
        }
        if (t - start < STALL_CHECK_NS) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000}; /* a long stall: stop burning the core and let other threads run */
            Py_BEGIN_ALLOW_THREADS
            nanosleep(&ts, NULL);
            Py_END_ALLOW_THREADS
        }
    }
}

/* drop_oldest: move every consumer that is more than a ring behind past its oldest records.
 * Returns 1 when there is room, 0 on timeout, -1 with an exception set. */
static int make_room(Endpoint *e, uint64_t end, int64_t deadline) {
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
                int r = wait_published(e, c, 0, deadline);
                if (r <= 0) return r;
                continue;
            }
            uint64_t off = c % e->cap; /* cap >= MIN_CAPACITY, aligned: off + REC_HDR <= cap */
            uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
            uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
            uint64_t r = (flags & REC_PAD) ? e->cap - off : rec_size(len);
            if (len > e->max_message || r > e->cap - off) {
                /* Torn read: another producer moved this cursor and overwrote the record; it moved the cursor
                 * before writing (see the RELEASE fence in produce), so an unchanged cursor means a corrupt
                 * record rather than a race, and retrying would spin forever. */
                __atomic_thread_fence(__ATOMIC_ACQUIRE);
                if (LOAD_RLX(&cl->cursor) == c) return ring_broken(e, "corrupt record length", c);
                continue;
            }
            if (__atomic_compare_exchange_n(&cl->cursor, &c, c + r, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                if (!(flags & REC_PAD)) __atomic_fetch_add(&cl->dropped, 1u, __ATOMIC_RELAXED);
            }
        }
    }
    return 1;
}

/* Returns 1 sent, 0 timed out / closed, -1 exception. */
static int produce(Endpoint *e, const char *src, uint64_t len, int64_t deadline) {
    ring_hdr *H = e->h;
    prod_line *pl = &e->prods[e->index];
    uint64_t rec = rec_size(len), h, end, pad;
    int waited = 0;
    for (;;) {
        if (LOAD_ACQ(&H->closed)) return 0; /* producers are done: refuse rather than block at shutdown */
        if (check_not_broken(e) < 0) return -1;
        h = LOAD_RLX(&H->reserve);
        /* positions are multiples of 8 (records are padded): an unaligned one would put a record header across
         * the end of the data area */
        if (h & 7u) return ring_broken(e, "unaligned reserve position", h);
        uint64_t off = h % e->cap;
        pad = off + rec > e->cap ? e->cap - off : 0;
        end = h + pad + rec;
        if (e->drop) {
            int r = make_room(e, end, deadline);
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
            if (deadline >= 0 && now_ns() >= deadline) return 0;
            waited = 1;
            int r = wait_for(e, space_ok, end, &H->space_seq, &H->space_waiters, deadline);
            if (r <= 0) return r;
            continue;
        }
        /* The claim precedes the CAS (so it is visible with any reservation at or after h; see reserver_alive);
         * both are stores to this producer's own line. RELEASE orders our last publish before the new claim (a
         * plain store on x86-64). */
        STORE_RLX(&pl->pid, (int32_t)self_pid);
        STORE_REL(&pl->claim, h);
        /* ACQ_REL: later payload stores stay after the claim; drop_oldest readers re-validate by cursor CAS */
        if (__atomic_compare_exchange_n(&H->reserve, &h, end, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) break;
    }
    /* drop_oldest: the cursors this producer moved (or saw moved) past [h, end) are ordered before its writes
     * there, so a reader that sees the new bytes and then its old cursor knows the record is corrupt, not torn.
     * A compiler barrier on x86-64. */
    if (e->drop) __atomic_thread_fence(__ATOMIC_RELEASE);
    uint64_t off = h % e->cap;
    if (pad) {
        STORE_RLX((uint32_t *)(e->data + off), 0u);
        STORE_RLX((uint32_t *)(e->data + off + 4), REC_PAD);
        off = 0;
    }
    STORE_RLX((uint32_t *)(e->data + off), (uint32_t)len);
    STORE_RLX((uint32_t *)(e->data + off + 4), 0u);
    if (len) memcpy(e->data + off + REC_HDR, src, len);
    /* Commit in reservation order so `published` is one counter; only other producers' memcpy is awaited. */
    if (LOAD_ACQ(&H->published) != h && wait_published(e, h, 1, deadline) < 0) return -1;
    STORE_REL(&H->published, end);
    STORE_RLX(&pl->sent, LOAD_RLX(&pl->sent) + 1);
    if (waited) STORE_RLX(&pl->bp_waits, LOAD_RLX(&pl->bp_waits) + 1);
    doorbell_ring(&H->data_seq, &H->data_waiters);
    return 1;
}

static PyObject *Producer_send(Endpoint *e, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *obj, *timeout;
    if (fast_args(args, nargs, kwnames, "send(data, timeout=None)", 1, &obj, &timeout) < 0) return NULL;
    if (check_bound(e) < 0) return NULL;
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0) return NULL;
    Py_buffer pb;
    int have_pb = 0;
    const char *src;
    Py_ssize_t len;
    if (PyBytes_CheckExact(obj)) {
        src = PyBytes_AS_STRING(obj);
        len = PyBytes_GET_SIZE(obj);
    } else {
        if (PyObject_GetBuffer(obj, &pb, PyBUF_SIMPLE) < 0) return NULL;
        have_pb = 1;
        src = pb.buf;
        len = pb.len;
    }
    int r;
    if ((uint64_t)len > e->max_message) {
        PyErr_Format(PyExc_ValueError, "message of %zd bytes exceeds this ring's maximum of %llu", len,
                     (unsigned long long)e->max_message);
        r = -1;
    } else {
        e->busy = 1;
        r = produce(e, src, (uint64_t)len, deadline);
        e->busy = 0;
    }
    if (have_pb) PyBuffer_Release(&pb);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

/* ------------------------------------------------------------------ consumer */

static int data_ready(Endpoint *e, uint64_t cursor) {
    return (e->cached = LOAD_ACQ(&e->h->published)) != cursor || LOAD_ACQ(&e->h->closed) || LOAD_ACQ(&e->h->broken);
}

static inline int advance(Endpoint *e, cons_line *cl, uint64_t c, uint64_t to) {
    if (e->drop) return __atomic_compare_exchange_n(&cl->cursor, &c, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    STORE_REL(&cl->cursor, to); /* RELEASE: our reads of the record happen before a producer reuses it */
    doorbell_ring(&e->h->space_seq, &e->h->space_waiters);
    return 1;
}

static PyObject *consume(Endpoint *e, int64_t deadline);

static PyObject *Consumer_recv(Endpoint *e, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *timeout;
    if (fast_args(args, nargs, kwnames, "recv(timeout=None)", 0, NULL, &timeout) < 0) return NULL;
    if (check_bound(e) < 0) return NULL;
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0) return NULL;
    e->busy = 1;
    PyObject *r = consume(e, deadline);
    e->busy = 0;
    return r;
}

/* One message, or None on timeout or when closed and drained; NULL with an exception set. */
static PyObject *consume(Endpoint *e, int64_t deadline) {
    ring_hdr *H = e->h;
    cons_line *cl = &e->conss[e->index];
    for (;;) {
        uint64_t c = e->drop ? LOAD_ACQ(&cl->cursor) : LOAD_RLX(&cl->cursor);
        if ((int64_t)(c - e->cached) >= 0) e->cached = LOAD_ACQ(&H->published);
        /* Loaded after the cursor, `published` can only be at or past it; behind it the positions are corrupt
         * (and waiting for "published != cursor" would return at once, forever). */
        if ((int64_t)(e->cached - c) < 0) {
            e->cached = LOAD_ACQ(&H->published);
            if ((int64_t)(e->cached - c) < 0) {
                ring_broken(e, "consumer cursor ahead of the published position", c);
                return NULL;
            }
        }
        if (c == e->cached) {
            if (check_not_broken(e) < 0) return NULL;
            if (LOAD_ACQ(&H->closed)) {
                if (LOAD_ACQ(&H->published) == c) Py_RETURN_NONE; /* closed and drained */
                continue;
            }
            int r = wait_for(e, data_ready, c, &H->data_seq, &H->data_waiters, deadline);
            if (r < 0) return NULL;
            if (r == 0) Py_RETURN_NONE;
            continue;
        }
        /* an unaligned cursor would put a record header across the end of the data area */
        if (c & 7u) {
            ring_broken(e, "unaligned consumer cursor", c);
            return NULL;
        }
        /* backpressure: producers never pass a cursor, so more than a ring of unread bytes is corrupt (it once
         * made a sink count 10 million messages of 30 thousand sent). drop_oldest: producers move a lagging
         * cursor before they publish, so a reload sees it moved, or the positions are corrupt. */
        if ((int64_t)(e->cached - c) > (int64_t)e->cap) {
            if (e->drop && LOAD_ACQ(&cl->cursor) != c) continue;
            ring_broken(e, "consumer cursor more than a ring behind", c);
            return NULL;
        }
        uint64_t off = c % e->cap; /* aligned and cap >= MIN_CAPACITY: off + REC_HDR <= cap */
        uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
        uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
        if (flags & REC_PAD) {
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
            ring_broken(e, "corrupt record length", c);
            return NULL;
        }
        PyObject *b = PyBytes_FromStringAndSize(NULL, len);
        if (b == NULL) return NULL;
        if (len) memcpy(PyBytes_AS_STRING(b), e->data + off + REC_HDR, len);
        if (!advance(e, cl, c, c + r)) { /* drop_oldest: a producer dropped this record while we copied */
            Py_DECREF(b);
            continue;
        }
        STORE_RLX(&cl->received, LOAD_RLX(&cl->received) + 1);
        return b;
    }
}

static PyObject *Consumer_pending(Endpoint *e, PyObject *Py_UNUSED(ignored)) {
    if (check_bound(e) < 0) return NULL;
    uint64_t c = LOAD_ACQ(&e->conss[e->index].cursor);
    return PyLong_FromUnsignedLongLong(LOAD_ACQ(&e->h->published) - c);
}

static PyMethodDef Producer_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Producer_send, METH_FASTCALL | METH_KEYWORDS,
     "send(data, timeout=None) -> bool: False on timeout or when the ring is closed"},
    {"release", (PyCFunction)Endpoint_release, METH_NOARGS, "drop the reference to the shared segment"},
    {NULL, NULL, 0, NULL}};

static PyMethodDef Consumer_methods[] = {
    {"recv", (PyCFunction)(void (*)(void))Consumer_recv, METH_FASTCALL | METH_KEYWORDS,
     "recv(timeout=None) -> bytes | None: None on timeout, or when closed and drained"},
    {"pending", (PyCFunction)Consumer_pending, METH_NOARGS, "bytes (records + padding) not yet read"},
    {"release", (PyCFunction)Endpoint_release, METH_NOARGS, "drop the reference to the shared segment"},
    {NULL, NULL, 0, NULL}};

static int Producer_init(Endpoint *e, PyObject *a, PyObject *k) { return Endpoint_init(e, a, k, 1); }
static int Consumer_init(Endpoint *e, PyObject *a, PyObject *k) { return Endpoint_init(e, a, k, 0); }

static PyTypeObject ProducerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flowc.runtime._ring.Producer",
    .tp_basicsize = sizeof(Endpoint),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Producer(buffer, index, spin_us=-1, yield_us=-1): one producer slot of a ring segment",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Producer_init,
    .tp_dealloc = (destructor)Endpoint_dealloc,
    .tp_methods = Producer_methods,
};

static PyTypeObject ConsumerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flowc.runtime._ring.Consumer",
    .tp_basicsize = sizeof(Endpoint),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Consumer(buffer, index, spin_us=-1, yield_us=-1): one consumer cursor of a ring segment",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Consumer_init,
    .tp_dealloc = (destructor)Endpoint_dealloc,
    .tp_methods = Consumer_methods,
};

/* ------------------------------------------------------------------ segment-level functions */

/* Maps a buffer as a ring for the segment-level functions; `m` gets the checked copy of its header, which is
 * what they use (the shared one may change under them). With `m` NULL only the fixed header words are used
 * (closed flag, doorbells), so only the size is checked: a launcher can still close and wake a ring whose
 * header was corrupted, and learn about the corruption from stats(). */
static ring_hdr *segment(PyObject *buf, Py_buffer *view, meta_t *m) {
    if (PyObject_GetBuffer(buf, view, PyBUF_WRITABLE) < 0) return NULL;
    if (m == NULL && (size_t)view->len < sizeof(ring_hdr)) {
        PyBuffer_Release(view);
        PyErr_SetString(RingError, "not a valid flowc ring segment: segment smaller than a ring header");
        return NULL;
    }
    if (m != NULL && read_meta(view->buf, view->len, m) < 0) {
        PyBuffer_Release(view);
        return NULL;
    }
    return view->buf;
}

static PyObject *mod_layout_size(PyObject *self, PyObject *args) {
    unsigned long long cap, np, nc;
    if (!PyArg_ParseTuple(args, "KKK", &cap, &np, &nc)) return NULL;
    if (np > MAX_ENDS || nc > MAX_ENDS || cap > UINT64_MAX - layout_data_offset(np, nc)) {
        PyErr_SetString(PyExc_ValueError, "invalid ring geometry");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(layout_data_offset(np, nc) + cap);
}

static PyObject *mod_init(PyObject *self, PyObject *args) {
    PyObject *buf;
    unsigned long long cap, np, nc, maxmsg, spin_ns, yield_ns;
    int drop, huge;
    if (!PyArg_ParseTuple(args, "OKKKKppKK", &buf, &cap, &np, &nc, &maxmsg, &drop, &huge, &spin_ns, &yield_ns))
        return NULL;
    /* the same limits an attacher checks (check_meta), so that every segment made here can be attached */
    if (np < 1 || nc < 1 || np > MAX_ENDS || nc > MAX_ENDS || cap % 8 || cap < MIN_CAPACITY ||
        cap > UINT64_MAX - layout_data_offset(np, nc) || maxmsg > cap / 4 || rec_size(maxmsg) > cap / 4 ||
        spin_ns > MAX_BUDGET_NS || yield_ns > MAX_BUDGET_NS) {
        PyErr_SetString(PyExc_ValueError, "invalid ring geometry");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) return NULL;
    uint64_t off = layout_data_offset(np, nc);
    if ((uint64_t)view.len < off + cap) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "buffer too small for the ring");
        return NULL;
    }
    memset(view.buf, 0, off);
    ring_hdr *h = view.buf;
    meta_t m = {0, RING_VERSION, (drop ? F_DROP_OLDEST : 0u) | (huge ? F_HUGE_PAGES : 0u), cap, (uint32_t)np,
                (uint32_t)nc, maxmsg, off, spin_ns, yield_ns};
    h->meta = m;
    /* the magic goes last with RELEASE: an attacher that sees it sees a fully initialised header */
    STORE_REL(&h->meta.magic, RING_MAGIC);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *mod_info(PyObject *self, PyObject *buf) {
    Py_buffer view;
    meta_t copy, *m = &copy;
    ring_hdr *h = segment(buf, &view, m);
    if (h == NULL) return NULL;
    PyObject *d = Py_BuildValue("{sKsIsIsKsOsOsKsK}", "capacity", (unsigned long long)m->capacity, "producers",
                                m->producers, "consumers", m->consumers, "max_message",
                                (unsigned long long)m->max_message, "drop_oldest",
                                (m->flags & F_DROP_OLDEST) ? Py_True : Py_False, "huge_pages",
                                (m->flags & F_HUGE_PAGES) ? Py_True : Py_False, "spin_ns",
                                (unsigned long long)m->spin_ns, "yield_ns", (unsigned long long)m->yield_ns);
    PyBuffer_Release(&view);
    return d;
}

static PyObject *mod_stats(PyObject *self, PyObject *buf) {
    Py_buffer view;
    meta_t m;
    ring_hdr *h = segment(buf, &view, &m);
    if (h == NULL) return NULL;
    prod_line *pl = (prod_line *)((char *)view.buf + sizeof(ring_hdr));
    cons_line *cl = (cons_line *)(pl + m.producers);
    PyObject *sent = PyList_New(m.producers), *waits = PyList_New(m.producers);
    PyObject *recv = PyList_New(m.consumers), *drop = PyList_New(m.consumers);
    PyObject *res = NULL;
    if (sent && waits && recv && drop) {
        for (uint32_t i = 0; i < m.producers; i++) {
            PyList_SET_ITEM(sent, i, PyLong_FromUnsignedLongLong(LOAD_RLX(&pl[i].sent)));
            PyList_SET_ITEM(waits, i, PyLong_FromUnsignedLongLong(LOAD_RLX(&pl[i].bp_waits)));
        }
        for (uint32_t j = 0; j < m.consumers; j++) {
            PyList_SET_ITEM(recv, j, PyLong_FromUnsignedLongLong(LOAD_RLX(&cl[j].received)));
            PyList_SET_ITEM(drop, j, PyLong_FromUnsignedLongLong(LOAD_RLX(&cl[j].dropped)));
        }
        res = Py_BuildValue("{sOsOsOsOsOsKsKsO}", "broken", LOAD_ACQ(&h->broken) ? Py_True : Py_False,
                            "sent_per_producer", sent, "backpressure_waits_per_producer", waits,
                            "received_per_consumer", recv, "dropped_per_consumer", drop, "published_bytes",
                            (unsigned long long)LOAD_ACQ(&h->published), "reserved_bytes",
                            (unsigned long long)LOAD_ACQ(&h->reserve), "closed",
                            LOAD_ACQ(&h->closed) ? Py_True : Py_False);
    }
    Py_XDECREF(sent);
    Py_XDECREF(waits);
    Py_XDECREF(recv);
    Py_XDECREF(drop);
    PyBuffer_Release(&view);
    return res;
}

static void wake_everyone(ring_hdr *h) {
    __atomic_fetch_add(&h->data_seq, 1u, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&h->space_seq, 1u, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &h->data_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    syscall(SYS_futex, &h->space_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static PyObject *mod_wake_all(PyObject *self, PyObject *buf) {
    Py_buffer view;
    ring_hdr *h = segment(buf, &view, NULL);
    if (h == NULL) return NULL;
    wake_everyone(h);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *mod_close_writers(PyObject *self, PyObject *buf) {
    Py_buffer view;
    ring_hdr *h = segment(buf, &view, NULL);
    if (h == NULL) return NULL;
    STORE_REL(&h->closed, 1u);
    wake_everyone(h);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *mod_is_closed(PyObject *self, PyObject *buf) {
    Py_buffer view;
    ring_hdr *h = segment(buf, &view, NULL);
    if (h == NULL) return NULL;
    uint32_t c = LOAD_ACQ(&h->closed);
    PyBuffer_Release(&view);
    return PyBool_FromLong(c != 0);
}

static PyMethodDef module_methods[] = {
    {"layout_size", mod_layout_size, METH_VARARGS, "layout_size(capacity, producers, consumers) -> segment bytes"},
    {"init", mod_init, METH_VARARGS,
     "init(buffer, capacity, producers, consumers, max_message, drop_oldest, huge_pages, spin_ns, yield_ns)"},
    {"info", mod_info, METH_O, "info(buffer) -> dict of the segment's geometry and policy"},
    {"stats", mod_stats, METH_O, "stats(buffer) -> dict of raw counters"},
    {"wake_all", mod_wake_all, METH_O, "wake_all(buffer): wake every blocked sender and receiver"},
    {"close_writers", mod_close_writers, METH_O, "close_writers(buffer): set the closed flag and wake everyone"},
    {"is_closed", mod_is_closed, METH_O, "is_closed(buffer) -> bool"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef ring_module = {PyModuleDef_HEAD_INIT, "flowc.runtime._ring",
                                         "C hot path of flowc.runtime.ring (shared-memory rings).", -1,
                                         module_methods};

/* Where each shared field lives, for tests and tools that inspect (or deliberately corrupt) a segment. */
static PyObject *layout_offsets(void) {
#define F(type, field) #field, (unsigned long long)offsetof(type, field)
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsK}", F(meta_t, magic), F(meta_t, version),
                         F(meta_t, flags), F(meta_t, capacity), F(meta_t, producers), F(meta_t, consumers),
                         F(meta_t, max_message), F(meta_t, data_offset), F(meta_t, spin_ns), F(meta_t, yield_ns),
                         F(ring_hdr, reserve), F(ring_hdr, published), F(ring_hdr, closed), F(ring_hdr, broken),
                         "header_size", (unsigned long long)sizeof(ring_hdr), "line_size",
                         (unsigned long long)sizeof(prod_line), F(prod_line, claim), F(prod_line, pid),
                         F(cons_line, cursor));
#undef F
}

PyMODINIT_FUNC PyInit__ring(void) {
    if (PyType_Ready(&ProducerType) < 0 || PyType_Ready(&ConsumerType) < 0) return NULL;
    refresh_pid();
    pthread_atfork(NULL, NULL, refresh_pid); /* a forked producer records its own pid, not its parent's */
    PyObject *m = PyModule_Create(&ring_module);
    if (m == NULL) return NULL;
    if (RingError == NULL) {
        RingError = PyErr_NewExceptionWithDoc(
            "flowc.runtime.ring.RingError",
            "A ring could not be created or attached, or its segment is corrupt or broken.", NULL, NULL);
        if (RingError == NULL) {
            Py_DECREF(m);
            return NULL;
        }
    }
    PyObject *layout = layout_offsets();
    Py_INCREF(&ProducerType);
    Py_INCREF(&ConsumerType);
    Py_INCREF(RingError);
    if (layout == NULL || PyModule_AddObject(m, "Producer", (PyObject *)&ProducerType) < 0 ||
        PyModule_AddObject(m, "Consumer", (PyObject *)&ConsumerType) < 0 ||
        PyModule_AddObject(m, "RingError", RingError) < 0 || PyModule_AddObject(m, "LAYOUT", layout) < 0 ||
        PyModule_AddIntConstant(m, "RECORD_HEADER", REC_HDR) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
