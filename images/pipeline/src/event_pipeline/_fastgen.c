/* event_pipeline._fastgen: generate.make_chunk's per-event loop, in C, byte for byte.
 *
 * make_chunk draws one random number per event with rng.getrandbits(draw_bits), 32 <
 * draw_bits <= 64: CPython makes it of two 32-bit Mersenne Twister outputs, the first as the
 * low word and the second shifted right by 64 - draw_bits as the high word. The Python side
 * passes the same outputs at once, rng.getrandbits(64 * n) as n * 8 little-endian bytes, so
 * this loop sees exactly the numbers the Python loop would. The per-second timestamp prefixes
 * are made in Python (time.strftime) for the chunk's window and passed in; every other piece
 * is one of the pools' precomputed fragments, packed (generate._packed) so that the loop reads
 * one 8-byte span and copies from one arena per piece. tests/pipeline/test_generate.py compares both
 * loops' bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* A pool of fragments, as generate._packed makes it: an arena of bytes, and per entry a
 * native uint64 span: offset in the arena << 16 | length. The arena ends with at least COPY
 * spare bytes, so a fragment of up to COPY bytes is copied as COPY fixed bytes (a few vector
 * moves instead of a call), the spare bytes being overwritten by what follows. */
#define COPY 64
typedef struct {
    Py_buffer arena;
    Py_buffer spans;
    Py_ssize_t size; /* entries */
    Py_ssize_t longest;
} Pool;

static int
pool_check(Pool *pool, const char *name, Py_ssize_t need)
{
    const uint64_t *spans = pool->spans.buf;
    if (pool->spans.len % 8 != 0 || pool->spans.len / 8 < need) {
        PyErr_Format(PyExc_ValueError, "%s: at least %zd spans of 8 bytes", name, need);
        return -1;
    }
    pool->size = pool->spans.len / 8;
    pool->longest = 0;
    for (Py_ssize_t i = 0; i < pool->size; i++) {
        uint64_t offset = spans[i] >> 16, length = spans[i] & 0xffff;
        if (offset + (length > COPY ? length : COPY) > (uint64_t)pool->arena.len) {
            PyErr_Format(PyExc_ValueError, "%s: span %zd is outside its arena", name, i);
            return -1;
        }
        if ((Py_ssize_t)length > pool->longest) {
            pool->longest = (Py_ssize_t)length;
        }
    }
    return 0;
}

static inline char *
put(char *out, const Pool *pool, uint64_t index)
{
    uint64_t span = ((const uint64_t *)pool->spans.buf)[index];
    size_t length = span & 0xffff;
    const char *from = (const char *)pool->arena.buf + (span >> 16);
    if (length <= COPY) {
        memcpy(out, from, COPY);
    }
    else {
        memcpy(out, from, length);
    }
    return out + length;
}

PyDoc_STRVAR(make_events_doc,
"make_events(words, n, draw_bits, ms, *prefixes, *millis, *users, *events, *products,\n"
"            *durations) -> bytes\n\n"
"n events, as generate.make_chunk's loop writes them: words = rng.getrandbits(64 * n) as\n"
"n * 8 little-endian bytes; ms the millisecond before the first event; each pool an\n"
"(arena, spans) pair of generate._packed: prefixes[k] the timestamp prefix of the window's\n"
"second k (its last one is where time stops), users with a power-of-two size (its index:\n"
"the draw's top bits).");

static PyObject *
make_events(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer words;
    Py_ssize_t n;
    int draw_bits;
    long ms;
    static const char *names[6] = {"prefixes", "millis", "users", "events", "products",
                                   "durations"};
    Pool pools[6];
    PyObject *result = NULL;
    memset(pools, 0, sizeof(pools));
    /* Flat arguments: in Python 3.11, "y*" inside a nested "(...)" overflows the cleanup list
     * of PyArg_ParseTuple beyond 8 of them. */
    if (!PyArg_ParseTuple(args, "y*nily*y*y*y*y*y*y*y*y*y*y*y*:make_events", &words,
                          &n, &draw_bits, &ms, &pools[0].arena, &pools[0].spans,
                          &pools[1].arena, &pools[1].spans, &pools[2].arena, &pools[2].spans,
                          &pools[3].arena, &pools[3].spans, &pools[4].arena, &pools[4].spans,
                          &pools[5].arena, &pools[5].spans)) {
        return NULL; /* PyArg_ParseTuple released what it had taken */
    }
    /* The field layout of generate.make_chunk: gap 7 bits, duration 12, product 11, event 7,
     * then the user. */
    const int gap_bits = 7, duration_bits = 12, product_bits = 11, event_bits = 7;
    const int user_bits = draw_bits - gap_bits - duration_bits - product_bits - event_bits;
    if (n < 0 || words.len != n * 8 || draw_bits <= 32 || draw_bits > 64 || user_bits < 1
        || ms < 0 || ms > 999) {
        PyErr_SetString(PyExc_ValueError,
                        "make_events: needs n * 8 bytes of words, 32 < draw_bits <= 64, "
                        "0 <= ms <= 999");
        goto done;
    }
    const Py_ssize_t need[6] = {1, 1000, (Py_ssize_t)1 << user_bits, (Py_ssize_t)1 << event_bits,
                                (Py_ssize_t)1 << product_bits, (Py_ssize_t)1 << duration_bits};
    Py_ssize_t longest = 0;
    for (int i = 0; i < 6; i++) {
        if (pool_check(&pools[i], names[i], need[i]) < 0) {
            goto done;
        }
        longest += pools[i].longest;
    }
    if (n > 0 && longest > (PY_SSIZE_T_MAX - COPY) / n) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n * longest + COPY);
    if (result == NULL) {
        goto done;
    }
    const unsigned char *w = words.buf;
    const int high_shift = 64 - draw_bits;
    const int d_shift = gap_bits, p_shift = d_shift + duration_bits;
    const int e_shift = p_shift + product_bits, u_shift = e_shift + event_bits;
    const uint64_t last_second = (uint64_t)pools[0].size - 1;
    uint64_t second = 0;
    char *out = PyBytes_AS_STRING(result);
    for (Py_ssize_t i = 0; i < n; i++, w += 8) {
        uint32_t low = (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16
                       | (uint32_t)w[3] << 24;
        uint32_t high = (uint32_t)w[4] | (uint32_t)w[5] << 8 | (uint32_t)w[6] << 16
                        | (uint32_t)w[7] << 24;
        uint64_t r = (uint64_t)low | (uint64_t)(high >> high_shift) << 32;
        ms += (long)(r & ((1u << gap_bits) - 1));
        if (ms >= 1000) { /* a gap is < 1000 ms: at most one carry */
            ms -= 1000;
            if (second < last_second) {
                second++;
            }
            else {
                ms = 999;
            }
        }
        out = put(out, &pools[0], second);
        out = put(out, &pools[1], (uint64_t)ms);
        out = put(out, &pools[2], r >> u_shift);
        out = put(out, &pools[3], (r >> e_shift) & ((1u << event_bits) - 1));
        out = put(out, &pools[4], (r >> p_shift) & ((1u << product_bits) - 1));
        out = put(out, &pools[5], (r >> d_shift) & ((1u << duration_bits) - 1));
    }
    if (_PyBytes_Resize(&result, out - PyBytes_AS_STRING(result)) < 0) {
        result = NULL;
    }
done:
    for (int i = 0; i < 6; i++) {
        PyBuffer_Release(&pools[i].arena);
        PyBuffer_Release(&pools[i].spans);
    }
    PyBuffer_Release(&words);
    return result;
}

static PyMethodDef module_methods[] = {
    {"make_events", make_events, METH_VARARGS, make_events_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastgen_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "event_pipeline._fastgen",
    .m_doc = PyDoc_STR("generate.make_chunk's per-event loop in C (see _fastgen.c)."),
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__fastgen(void)
{
    return PyModule_Create(&fastgen_module);
}
