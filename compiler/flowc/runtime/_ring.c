/* flowc.runtime._ring: the CPython face of flowc's shared-memory rings (flowc.runtime.ring uses it).
 *
 * The ring itself (layout checks, reserve/publish/consume, the futex doorbells, breaking a corrupt ring) is the
 * plain-C library in flowc_ring.c (include/flowc_ring.h, docs/ring-abi.md), which C actors compile too, so
 * Python and C run the same code. What lives here is what only Python needs: buffer objects in and bytes out,
 * statuses turned into exceptions (RingError for a bad or broken segment), the GIL released around blocking
 * waits and Ctrl-C checked between them (the library's wait hooks), and one thread per endpoint enforced.
 * Nothing here reads or writes the segment itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The library is compiled into this translation unit: the extension stays one C file to build (for the wheel and
 * for the sanitizer builds of the tests), and the compiler can inline the hot path into send and recv. */
#include "flowc_ring.c"

static PyObject *RingError; /* flowc.runtime.ring.RingError: a segment that cannot be trusted or is broken */

/* Turns a failed status into the exception Python callers expect; one already set (by a signal handler run
 * from the interrupted hook, or by the receive sink) wins. Returns NULL. */
static PyObject *raise_status(int status) {
    if (PyErr_Occurred()) return NULL;
    switch (status) {
    case FLOWC_EINVAL:
    case FLOWC_ETOOBIG: PyErr_SetString(PyExc_ValueError, flowc_last_error()); break;
    case FLOWC_ERANGE: PyErr_SetString(PyExc_IndexError, flowc_last_error()); break;
    case FLOWC_ENOMEM: PyErr_NoMemory(); break;
    default: PyErr_SetString(RingError, flowc_last_error()); break;
    }
    return NULL;
}

/* ------------------------------------------------------------------ wait hooks: the GIL and signals */

static void *release_gil(void *ctx) {
    (void)ctx;
    return PyEval_SaveThread();
}

static void take_gil(void *ctx, void *state) {
    (void)ctx;
    PyEval_RestoreThread((PyThreadState *)state);
}

static int signal_raised(void *ctx) {
    (void)ctx;
    return PyErr_CheckSignals() < 0;
}

static const flowc_wait_hooks python_hooks = {NULL, release_gil, take_gil, signal_raised};

/* ------------------------------------------------------------------ endpoints */

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    flowc_ring *ring;
    flowc_producer *producer;
    flowc_consumer *consumer;
    /* Inside send/recv. Both can release the GIL while they wait, so another thread could enter the same
     * endpoint (two writers of one claim line or cursor) or release its view (unmapping memory under the
     * waiter); both are refused while this is set. Only touched with the GIL held. */
    int busy;
} Endpoint;

static void unbind(Endpoint *e) {
    flowc_producer_close(e->producer);
    flowc_consumer_close(e->consumer);
    flowc_ring_close(e->ring);
    e->producer = NULL;
    e->consumer = NULL;
    e->ring = NULL;
    if (e->has_view) PyBuffer_Release(&e->view);
    e->has_view = 0;
}

/* A budget in µs (negative: the ring's own) as nanoseconds; NaN or beyond a second would spin with the GIL held
 * (or overflow the clock arithmetic). */
static int budget_ns(double us, uint64_t ring_default, uint64_t *out) {
    if (!(us < 0 || us * 1000.0 <= (double)FLOWC_MAX_BUDGET_NS)) {
        PyErr_SetString(PyExc_ValueError, "spin_us and yield_us must be at most 1000000 (one second)");
        return -1;
    }
    *out = us < 0 ? ring_default : (uint64_t)(us * 1000.0);
    return 0;
}

static int bind_object(Endpoint *e, PyObject *buf, long index, int producer, double spin_us, double yield_us) {
    if (PyObject_GetBuffer(buf, &e->view, PyBUF_WRITABLE) < 0) return -1;
    e->has_view = 1;
    flowc_ring_info info;
    uint64_t spin_ns, yield_ns;
    int rc = flowc_ring_from_memory(e->view.buf, (size_t)e->view.len, &e->ring);
    if (rc != FLOWC_OK) goto fail;
    flowc_ring_info_of(e->ring, &info);
    if (budget_ns(spin_us, info.spin_ns, &spin_ns) < 0 || budget_ns(yield_us, info.yield_ns, &yield_ns) < 0) {
        unbind(e);
        return -1;
    }
    if (index < 0 || (uint64_t)index >= (producer ? info.producers : info.consumers)) {
        PyErr_Format(PyExc_IndexError, "%s index %ld out of range", producer ? "producer" : "consumer", index);
        unbind(e);
        return -1;
    }
    if (producer) {
        rc = flowc_producer_open(e->ring, (uint32_t)index, &e->producer);
        if (rc == FLOWC_OK) rc = flowc_producer_configure(e->producer, spin_ns, yield_ns, &python_hooks);
    } else {
        rc = flowc_consumer_open(e->ring, (uint32_t)index, &e->consumer);
        if (rc == FLOWC_OK) rc = flowc_consumer_configure(e->consumer, spin_ns, yield_ns, &python_hooks);
    }
    if (rc == FLOWC_OK) return 0;
fail:
    raise_status(rc);
    unbind(e);
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
    return bind_object(e, buf, index, producer, spin_us, yield_us);
}

static void Endpoint_dealloc(Endpoint *e) {
    unbind(e);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Endpoint_release(Endpoint *e, PyObject *Py_UNUSED(ignored)) {
    if (e->busy) {
        PyErr_SetString(PyExc_RuntimeError, "ring endpoint is in use by another thread; release it after its call");
        return NULL;
    }
    unbind(e);
    Py_RETURN_NONE;
}

/* A timeout in seconds (None: none) as the library's nanoseconds (negative: wait for ever). */
static int parse_timeout(PyObject *timeout, int64_t *timeout_ns) {
    *timeout_ns = -1;
    if (timeout == NULL || timeout == Py_None) return 0;
    double t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred()) return -1;
    if (t != t) { /* NaN: converting it to an integer is undefined */
        PyErr_SetString(PyExc_ValueError, "timeout must be a number of seconds, not NaN");
        return -1;
    }
    if (t < 0) t = 0;
    if (t >= 1e9) return 0; /* beyond 30 years (and infinity) is no deadline; the conversion would overflow */
    *timeout_ns = (int64_t)(t * 1e9);
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

static PyObject *Producer_send(Endpoint *e, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *obj, *timeout;
    if (fast_args(args, nargs, kwnames, "send(data, timeout=None)", 1, &obj, &timeout) < 0) return NULL;
    if (check_bound(e) < 0) return NULL;
    int64_t timeout_ns;
    if (parse_timeout(timeout, &timeout_ns) < 0) return NULL;
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
    e->busy = 1;
    int rc = flowc_send(e->producer, src, (size_t)len, timeout_ns);
    e->busy = 0;
    if (have_pb) PyBuffer_Release(&pb);
    if (rc == FLOWC_OK) Py_RETURN_TRUE;
    if (rc == FLOWC_ETIMEOUT || rc == FLOWC_ECLOSED) Py_RETURN_FALSE;
    return raise_status(rc);
}

/* The receive sink: a bytes object of the record's length (a retry after a drop_oldest race replaces it). */
static int into_bytes(void *ctx, uint32_t len, void **dest) {
    PyObject **bytes = ctx;
    Py_CLEAR(*bytes);
    *bytes = PyBytes_FromStringAndSize(NULL, len);
    if (*bytes == NULL) return FLOWC_ENOMEM;
    *dest = PyBytes_AS_STRING(*bytes);
    return FLOWC_OK;
}

static PyObject *Consumer_recv(Endpoint *e, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *timeout, *bytes = NULL;
    if (fast_args(args, nargs, kwnames, "recv(timeout=None)", 0, NULL, &timeout) < 0) return NULL;
    if (check_bound(e) < 0) return NULL;
    int64_t timeout_ns;
    if (parse_timeout(timeout, &timeout_ns) < 0) return NULL;
    e->busy = 1;
    int rc = flowc_recv_with(e->consumer, into_bytes, &bytes, timeout_ns);
    e->busy = 0;
    if (rc == FLOWC_OK) return bytes;
    Py_XDECREF(bytes);
    if (rc == FLOWC_ETIMEOUT || rc == FLOWC_ECLOSED) Py_RETURN_NONE;
    return raise_status(rc);
}

static PyObject *Consumer_pending(Endpoint *e, PyObject *Py_UNUSED(ignored)) {
    if (check_bound(e) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(flowc_consumer_pending(e->consumer));
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

/* A ring over `buf` whose header checked out (the segment functions use its copy of the header, since the shared
 * one may change under them), with the view to release after flowc_ring_close. NULL with an exception set. */
static flowc_ring *segment(PyObject *buf, Py_buffer *view) {
    if (PyObject_GetBuffer(buf, view, PyBUF_WRITABLE) < 0) return NULL;
    flowc_ring *ring;
    int rc = flowc_ring_from_memory(view->buf, (size_t)view->len, &ring);
    if (rc == FLOWC_OK) return ring;
    PyBuffer_Release(view);
    raise_status(rc);
    return NULL;
}

static PyObject *mod_layout_size(PyObject *self, PyObject *args) {
    unsigned long long cap, np, nc;
    uint64_t size;
    if (!PyArg_ParseTuple(args, "KKK", &cap, &np, &nc)) return NULL;
    /* checked before narrowing to the library's 32-bit counts */
    if (np > FLOWC_MAX_ENDS || nc > FLOWC_MAX_ENDS) {
        PyErr_SetString(PyExc_ValueError, "invalid ring geometry");
        return NULL;
    }
    int rc = flowc_ring_layout_size(cap, (uint32_t)np, (uint32_t)nc, &size);
    if (rc != FLOWC_OK) return raise_status(rc);
    return PyLong_FromUnsignedLongLong(size);
}

static PyObject *mod_init(PyObject *self, PyObject *args) {
    PyObject *buf;
    unsigned long long cap, np, nc, maxmsg, spin_ns, yield_ns;
    int drop, huge, shared = 0;
    if (!PyArg_ParseTuple(args, "OKKKKppKK|p", &buf, &cap, &np, &nc, &maxmsg, &drop, &huge, &spin_ns, &yield_ns,
                          &shared))
        return NULL;
    if (np > FLOWC_MAX_ENDS || nc > FLOWC_MAX_ENDS) {
        PyErr_SetString(PyExc_ValueError, "invalid ring geometry");
        return NULL;
    }
    flowc_ring_params params = {cap, (uint32_t)np, (uint32_t)nc, maxmsg, drop, huge, spin_ns, yield_ns, shared};
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) return NULL;
    int rc = flowc_ring_create_in(view.buf, (size_t)view.len, &params);
    PyBuffer_Release(&view);
    if (rc != FLOWC_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

static PyObject *mod_info(PyObject *self, PyObject *buf) {
    Py_buffer view;
    flowc_ring_info m;
    flowc_ring *ring = segment(buf, &view);
    if (ring == NULL) return NULL;
    flowc_ring_info_of(ring, &m);
    flowc_ring_close(ring);
    PyBuffer_Release(&view);
    return Py_BuildValue("{sKsIsIsKsOsOsOsKsK}", "capacity", (unsigned long long)m.capacity, "producers",
                         m.producers, "consumers", m.consumers, "max_message", (unsigned long long)m.max_message,
                         "drop_oldest", m.drop_oldest ? Py_True : Py_False, "huge_pages",
                         m.huge_pages ? Py_True : Py_False, "shared", m.shared ? Py_True : Py_False, "spin_ns",
                         (unsigned long long)m.spin_ns, "yield_ns", (unsigned long long)m.yield_ns);
}

static PyObject *mod_stats(PyObject *self, PyObject *buf) {
    Py_buffer view;
    flowc_ring *ring = segment(buf, &view);
    if (ring == NULL) return NULL;
    flowc_ring_info m;
    flowc_ring_stats s;
    flowc_ring_info_of(ring, &m);
    flowc_ring_stats_of(ring, &s);
    PyObject *sent = PyList_New(m.producers), *waits = PyList_New(m.producers);
    PyObject *recv = PyList_New(m.consumers), *drop = PyList_New(m.consumers), *cursors = PyList_New(m.consumers);
    PyObject *res = NULL;
    if (sent && waits && recv && drop && cursors) {
        for (uint32_t i = 0; i < m.producers; i++) {
            flowc_producer_counters pc;
            flowc_ring_producer_counters(ring, i, &pc);
            PyList_SET_ITEM(sent, i, PyLong_FromUnsignedLongLong(pc.sent));
            PyList_SET_ITEM(waits, i, PyLong_FromUnsignedLongLong(pc.backpressure_waits));
        }
        for (uint32_t j = 0; j < m.consumers; j++) {
            flowc_consumer_counters cc;
            flowc_ring_consumer_counters(ring, j, &cc);
            PyList_SET_ITEM(recv, j, PyLong_FromUnsignedLongLong(cc.received));
            PyList_SET_ITEM(drop, j, PyLong_FromUnsignedLongLong(cc.dropped));
            PyList_SET_ITEM(cursors, j, PyLong_FromUnsignedLongLong(cc.cursor));
        }
        res = Py_BuildValue("{sOsOsOsOsOsOsKsKsO}", "broken", s.broken ? Py_True : Py_False, "sent_per_producer", sent,
                            "backpressure_waits_per_producer", waits, "received_per_consumer", recv,
                            "dropped_per_consumer", drop, "cursor_per_consumer", cursors,
                            "published_bytes", (unsigned long long)s.published_bytes,
                            "reserved_bytes", (unsigned long long)s.reserved_bytes, "closed",
                            s.closed ? Py_True : Py_False);
    }
    Py_XDECREF(sent);
    Py_XDECREF(waits);
    Py_XDECREF(recv);
    Py_XDECREF(drop);
    Py_XDECREF(cursors);
    flowc_ring_close(ring);
    PyBuffer_Release(&view);
    return res;
}

/* wake_all, close_writers and is_closed use only the fixed header words, so they work on a segment whose
 * geometry is corrupt: a launcher can still close and wake it, and learn about the corruption from stats(). */
static PyObject *mod_wake_all(PyObject *self, PyObject *buf) {
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) return NULL;
    int rc = flowc_segment_wake_all(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc != FLOWC_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

static PyObject *mod_close_writers(PyObject *self, PyObject *buf) {
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) return NULL;
    int rc = flowc_segment_close_writers(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    if (rc != FLOWC_OK) return raise_status(rc);
    Py_RETURN_NONE;
}

static PyObject *mod_is_closed(PyObject *self, PyObject *buf) {
    Py_buffer view;
    int closed = 0;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) return NULL;
    int rc = flowc_segment_is_closed(view.buf, (size_t)view.len, &closed);
    PyBuffer_Release(&view);
    if (rc != FLOWC_OK) return raise_status(rc);
    return PyBool_FromLong(closed);
}

static PyMethodDef module_methods[] = {
    {"layout_size", mod_layout_size, METH_VARARGS, "layout_size(capacity, producers, consumers) -> segment bytes"},
    {"init", mod_init, METH_VARARGS,
     "init(buffer, capacity, producers, consumers, max_message, drop_oldest, huge_pages, spin_ns, yield_ns, "
     "shared=False)"},
    {"info", mod_info, METH_O, "info(buffer) -> dict of the segment's geometry and policy"},
    {"stats", mod_stats, METH_O, "stats(buffer) -> dict of raw counters"},
    {"wake_all", mod_wake_all, METH_O, "wake_all(buffer): wake every blocked sender and receiver"},
    {"close_writers", mod_close_writers, METH_O, "close_writers(buffer): set the closed flag and wake everyone"},
    {"is_closed", mod_is_closed, METH_O, "is_closed(buffer) -> bool"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef ring_module = {PyModuleDef_HEAD_INIT, "flowc.runtime._ring",
                                         "CPython wrapper of flowc's ring library (shared-memory rings).", -1,
                                         module_methods};

/* Where each shared field lives, for tests and tools that inspect (or deliberately corrupt) a segment. */
static PyObject *layout_offsets(void) {
#define F(name, off) name, (unsigned long long)(off)
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsK}", F("magic", FLOWC_OFF_MAGIC),
                         F("version", FLOWC_OFF_VERSION), F("flags", FLOWC_OFF_FLAGS),
                         F("capacity", FLOWC_OFF_CAPACITY), F("producers", FLOWC_OFF_PRODUCERS),
                         F("consumers", FLOWC_OFF_CONSUMERS), F("max_message", FLOWC_OFF_MAX_MESSAGE),
                         F("data_offset", FLOWC_OFF_DATA_OFFSET), F("spin_ns", FLOWC_OFF_SPIN_NS),
                         F("yield_ns", FLOWC_OFF_YIELD_NS), F("reserve", FLOWC_OFF_RESERVE),
                         F("published", FLOWC_OFF_PUBLISHED), F("closed", FLOWC_OFF_CLOSED),
                         F("broken", FLOWC_OFF_BROKEN), F("header_size", FLOWC_HEADER_SIZE),
                         F("line_size", FLOWC_LINE_SIZE), F("claim", FLOWC_OFF_CLAIM), F("pid", FLOWC_OFF_PID),
                         F("cursor", FLOWC_OFF_CURSOR));
#undef F
}

PyMODINIT_FUNC PyInit__ring(void) {
    if (PyType_Ready(&ProducerType) < 0 || PyType_Ready(&ConsumerType) < 0) return NULL;
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
        PyModule_AddIntConstant(m, "RECORD_HEADER", FLOWC_RECORD_HEADER) < 0) {
        Py_XDECREF(layout);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
