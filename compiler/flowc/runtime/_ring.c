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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
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
} ring_hdr;

typedef struct {
    _Alignas(64) uint64_t sent;
    uint64_t bp_waits;
} prod_line;

typedef struct {
    _Alignas(64) uint64_t cursor;
    uint64_t received;
    uint64_t dropped; /* written by producers (fetch_add) in drop_oldest */
} cons_line;

static uint64_t layout_data_offset(uint64_t producers, uint64_t consumers) {
    uint64_t end = sizeof(ring_hdr) + producers * sizeof(prod_line) + consumers * sizeof(cons_line);
    return (end + 4095u) & ~(uint64_t)4095u; /* page-align the data so huge/small pages map it cleanly */
}

static inline uint64_t rec_size(uint64_t len) { return REC_HDR + ((len + 7u) & ~(uint64_t)7u); }

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
    uint32_t nprod, ncons, drop, index;
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
    if ((size_t)e->view.len < sizeof(ring_hdr)) goto bad;
    e->h = (ring_hdr *)e->view.buf;
    meta_t *m = &e->h->meta;
    if (m->magic != RING_MAGIC || m->version != RING_VERSION) goto bad;
    if (m->data_offset + m->capacity > (uint64_t)e->view.len) goto bad;
    e->nprod = m->producers;
    e->ncons = m->consumers;
    e->cap = m->capacity;
    e->max_message = m->max_message;
    e->drop = (m->flags & F_DROP_OLDEST) != 0;
    e->prods = (prod_line *)((char *)e->view.buf + sizeof(ring_hdr));
    e->conss = (cons_line *)(e->prods + e->nprod);
    e->data = (unsigned char *)e->view.buf + m->data_offset;
    e->spin_ns = spin_us < 0 ? m->spin_ns : (uint64_t)(spin_us * 1000.0);
    e->yield_ns = yield_us < 0 ? m->yield_ns : (uint64_t)(yield_us * 1000.0);
    if (index < 0 || (uint64_t)index >= (producer ? e->nprod : e->ncons)) {
        PyErr_Format(PyExc_IndexError, "%s index %ld out of range", producer ? "producer" : "consumer", index);
        return -1;
    }
    e->index = (uint32_t)index;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "not a flowc ring segment (bad magic, version or size)");
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
    if (t < 0) t = 0;
    *deadline = now_ns() + (int64_t)(t * 1e9);
    return 0;
}

static int check_bound(Endpoint *e) {
    if (!e->has_view) {
        PyErr_SetString(PyExc_ValueError, "ring endpoint is closed");
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
    if (LOAD_ACQ(&e->h->closed)) return 1; /* shutdown: stop waiting, the send reports failure */
    uint64_t low = UINT64_MAX;
    for (uint32_t j = 0; j < e->ncons; j++) {
        /* ACQUIRE: the consumer's reads of the space happen before we overwrite it */
        uint64_t c = LOAD_ACQ(&e->conss[j].cursor);
        if (c < low) low = c;
    }
    e->cached = low;
    return (int64_t)(end - low) <= (int64_t)e->cap;
}

/* drop_oldest: move every consumer that is more than a ring behind past its oldest records. */
static void make_room(Endpoint *e, uint64_t end) {
    for (uint32_t j = 0; j < e->ncons; j++) {
        cons_line *cl = &e->conss[j];
        unsigned spins = 0;
        for (;;) {
            uint64_t c = LOAD_ACQ(&cl->cursor);
            if ((int64_t)(end - c) <= (int64_t)e->cap) break;
            if (LOAD_ACQ(&e->h->published) <= c) {
                /* the oldest record is still being written by another producer: it commits soon */
                if (++spins > 64) sched_yield(); else cpu_relax();
                continue;
            }
            uint64_t off = c % e->cap;
            uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
            uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
            uint64_t r = (flags & REC_PAD) ? e->cap - off : rec_size(len);
            if (r > e->cap - off) continue; /* torn read: someone else moved this cursor; reload */
            if (__atomic_compare_exchange_n(&cl->cursor, &c, c + r, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                if (!(flags & REC_PAD)) __atomic_fetch_add(&cl->dropped, 1u, __ATOMIC_RELAXED);
            }
        }
    }
}

/* Returns 1 sent, 0 timed out / closed, -1 exception. */
static int produce(Endpoint *e, const char *src, uint64_t len, int64_t deadline) {
    ring_hdr *H = e->h;
    uint64_t rec = rec_size(len), h, end, pad;
    int waited = 0;
    for (;;) {
        if (LOAD_ACQ(&H->closed)) return 0; /* producers are done: refuse rather than block at shutdown */
        h = LOAD_RLX(&H->reserve);
        uint64_t off = h % e->cap;
        pad = off + rec > e->cap ? e->cap - off : 0;
        end = h + pad + rec;
        if (e->drop) {
            make_room(e, end);
        } else if (!space_ok(e, end)) {
            if (deadline >= 0 && now_ns() >= deadline) return 0;
            waited = 1;
            int r = wait_for(e, space_ok, end, &H->space_seq, &H->space_waiters, deadline);
            if (r <= 0) return r;
            continue;
        }
        /* ACQ_REL: later payload stores stay after the claim; drop_oldest readers re-validate by cursor CAS */
        if (__atomic_compare_exchange_n(&H->reserve, &h, end, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) break;
    }
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
    unsigned spins = 0;
    while (LOAD_ACQ(&H->published) != h) {
        if (++spins > 64) sched_yield(); else cpu_relax();
    }
    STORE_REL(&H->published, end);
    prod_line *pl = &e->prods[e->index];
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
        r = produce(e, src, (uint64_t)len, deadline);
    }
    if (have_pb) PyBuffer_Release(&pb);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

/* ------------------------------------------------------------------ consumer */

static int data_ready(Endpoint *e, uint64_t cursor) {
    return (e->cached = LOAD_ACQ(&e->h->published)) != cursor || LOAD_ACQ(&e->h->closed);
}

static inline int advance(Endpoint *e, cons_line *cl, uint64_t c, uint64_t to) {
    if (e->drop) return __atomic_compare_exchange_n(&cl->cursor, &c, to, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    STORE_REL(&cl->cursor, to); /* RELEASE: our reads of the record happen before a producer reuses it */
    doorbell_ring(&e->h->space_seq, &e->h->space_waiters);
    return 1;
}

static PyObject *Consumer_recv(Endpoint *e, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *timeout;
    if (fast_args(args, nargs, kwnames, "recv(timeout=None)", 0, NULL, &timeout) < 0) return NULL;
    if (check_bound(e) < 0) return NULL;
    int64_t deadline;
    if (parse_deadline(timeout, &deadline) < 0) return NULL;
    ring_hdr *H = e->h;
    cons_line *cl = &e->conss[e->index];
    for (;;) {
        uint64_t c = e->drop ? LOAD_ACQ(&cl->cursor) : LOAD_RLX(&cl->cursor);
        if (c >= e->cached) e->cached = LOAD_ACQ(&H->published);
        if (c >= e->cached) {
            if (LOAD_ACQ(&H->closed)) {
                if (LOAD_ACQ(&H->published) == c) Py_RETURN_NONE; /* closed and drained */
                continue;
            }
            int r = wait_for(e, data_ready, c, &H->data_seq, &H->data_waiters, deadline);
            if (r < 0) return NULL;
            if (r == 0) Py_RETURN_NONE;
            continue;
        }
        uint64_t off = c % e->cap;
        uint32_t len = LOAD_RLX((uint32_t *)(e->data + off));
        uint32_t flags = LOAD_RLX((uint32_t *)(e->data + off + 4));
        if (flags & REC_PAD) {
            advance(e, cl, c, c + (e->cap - off));
            continue;
        }
        uint64_t r = rec_size(len);
        if (len > e->max_message || r > e->cap - off) {
            if (e->drop) continue; /* overwritten under us; the cursor has moved */
            PyErr_SetString(PyExc_RuntimeError, "corrupt ring record");
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

static ring_hdr *segment(PyObject *buf, Py_buffer *view) {
    if (PyObject_GetBuffer(buf, view, PyBUF_WRITABLE) < 0) return NULL;
    ring_hdr *h = view->buf;
    if ((size_t)view->len < sizeof(ring_hdr) || h->meta.magic != RING_MAGIC) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "not a flowc ring segment");
        return NULL;
    }
    return h;
}

static PyObject *mod_layout_size(PyObject *self, PyObject *args) {
    unsigned long long cap, np, nc;
    if (!PyArg_ParseTuple(args, "KKK", &cap, &np, &nc)) return NULL;
    return PyLong_FromUnsignedLongLong(layout_data_offset(np, nc) + cap);
}

static PyObject *mod_init(PyObject *self, PyObject *args) {
    PyObject *buf;
    unsigned long long cap, np, nc, maxmsg, spin_ns, yield_ns;
    int drop, huge;
    if (!PyArg_ParseTuple(args, "OKKKKppKK", &buf, &cap, &np, &nc, &maxmsg, &drop, &huge, &spin_ns, &yield_ns))
        return NULL;
    if (np < 1 || nc < 1 || np > MAX_ENDS || nc > MAX_ENDS || cap % 8 || rec_size(maxmsg) > cap / 4) {
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
    ring_hdr *h = segment(buf, &view);
    if (h == NULL) return NULL;
    meta_t *m = &h->meta;
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
    ring_hdr *h = segment(buf, &view);
    if (h == NULL) return NULL;
    prod_line *pl = (prod_line *)((char *)view.buf + sizeof(ring_hdr));
    cons_line *cl = (cons_line *)(pl + h->meta.producers);
    PyObject *sent = PyList_New(h->meta.producers), *waits = PyList_New(h->meta.producers);
    PyObject *recv = PyList_New(h->meta.consumers), *drop = PyList_New(h->meta.consumers);
    PyObject *res = NULL;
    if (sent && waits && recv && drop) {
        for (uint32_t i = 0; i < h->meta.producers; i++) {
            PyList_SET_ITEM(sent, i, PyLong_FromUnsignedLongLong(LOAD_RLX(&pl[i].sent)));
            PyList_SET_ITEM(waits, i, PyLong_FromUnsignedLongLong(LOAD_RLX(&pl[i].bp_waits)));
        }
        for (uint32_t j = 0; j < h->meta.consumers; j++) {
            PyList_SET_ITEM(recv, j, PyLong_FromUnsignedLongLong(LOAD_RLX(&cl[j].received)));
            PyList_SET_ITEM(drop, j, PyLong_FromUnsignedLongLong(LOAD_RLX(&cl[j].dropped)));
        }
        res = Py_BuildValue("{sOsOsOsOsKsKsO}", "sent_per_producer", sent, "backpressure_waits_per_producer", waits,
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
    ring_hdr *h = segment(buf, &view);
    if (h == NULL) return NULL;
    wake_everyone(h);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *mod_close_writers(PyObject *self, PyObject *buf) {
    Py_buffer view;
    ring_hdr *h = segment(buf, &view);
    if (h == NULL) return NULL;
    STORE_REL(&h->closed, 1u);
    wake_everyone(h);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *mod_is_closed(PyObject *self, PyObject *buf) {
    Py_buffer view;
    ring_hdr *h = segment(buf, &view);
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

PyMODINIT_FUNC PyInit__ring(void) {
    if (PyType_Ready(&ProducerType) < 0 || PyType_Ready(&ConsumerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&ring_module);
    if (m == NULL) return NULL;
    Py_INCREF(&ProducerType);
    Py_INCREF(&ConsumerType);
    if (PyModule_AddObject(m, "Producer", (PyObject *)&ProducerType) < 0 ||
        PyModule_AddObject(m, "Consumer", (PyObject *)&ConsumerType) < 0 ||
        PyModule_AddIntConstant(m, "RECORD_HEADER", REC_HDR) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
