/* event_pipeline._fastscan: the aggregator's fast path for the canonical line, in C.
 *
 * The canonical line is the shape generate-events writes, keys in this order, no whitespace:
 *   {"timestamp":"2026-11-20T23:59:02.104Z","userId":"joshua.maddox8","eventType":"pageView",
 *    "productId":"MH-01495","sessionDuration":357}
 * with ASCII ids without a backslash. accept_line() takes a line only when it has exactly that
 * shape AND passes every rule of rules.validate_line (checked here in full, see below); it
 * then adds its duration to the user's totals. Every other line, non-canonical or invalid, is
 * handed back to the caller, whose Python path (rules.validate_line) decides valid or rejected
 * and the reason exactly as without this module. So the fast path accepts a subset of what
 * validate_line accepts, with the same (userId, sessionDuration); tests/pipeline/
 * test_fastscan.py compares the two on the examples of the table of rules (rules.RULES: at and
 * past the limits restated below) and many thousands of mutated lines.
 *
 * The rules (rules.py), as restated and accepted here:
 * - timestamp: YYYY-MM-DDTHH:MM:SS, then optionally "." and exactly 3 or 6 digits, then
 *   optionally "Z" or +HH:MM / -HH:MM (HH 00-23, MM 00-59): year 0001-9999, month 01-12, a
 *   day that exists in that month (Gregorian leap years), hour 00-23, minute and second
 *   00-59. datetime.fromisoformat accepts all of these (Python >= 3.11);
 * - ids (userId, eventType, productId): 1 to MAX_ID_CHARS bytes of 0x20-0x7e, no '"' or '\',
 *   not all spaces: printable and not blank, as rules.py's _id and good_id require;
 * - sessionDuration: 0, or 1-10 digits without a leading zero, <= MAX_SESSION_DURATION.
 *
 * Totals are kept in an open-addressing hash table keyed by the user id's bytes; to_dict()
 * builds the Python {userId: [sum, count]} once at the end, in first-seen order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define MAX_ID_CHARS 256
#define MAX_SESSION_DURATION 2147483647LL
#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL
#define INITIAL_SLOTS 1024

/* A user's totals, in the arena, 8-byte aligned, its id right after it. */
typedef struct {
    int64_t sum;
    int64_t count;
    uint32_t len;
    char key[];
} Entry;

/* The table: each slot is 0 (empty) or (hash's high 32 bits << 32 | 1 + entry's offset in the
 * arena in 8-byte units). Slots are 8 bytes so that the table of 10,000 users (16,384 slots)
 * stays in a core's L2 cache; the entry is looked at only when the hash bits match. */
typedef struct {
    PyObject_HEAD
    uint64_t *slots;
    size_t mask; /* slots - 1, a power of two minus one */
    size_t used;
    char *arena;
    size_t arena_len; /* a multiple of 8 */
    size_t arena_cap;
} Totals;

/* What accept_line found in a canonical, valid line. */
typedef struct {
    const char *user;
    uint32_t user_len;
    uint64_t hash;
    int64_t duration;
} Event;

static int
two_digits(const unsigned char *p, int *out)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') {
        return 0;
    }
    *out = (p[0] - '0') * 10 + (p[1] - '0');
    return 1;
}

static int
days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) {
        return 29;
    }
    return days[month - 1];
}

/* The timestamp's characters from p up to its closing quote; the position of that quote, or
 * NULL if the timestamp is not one this fast path accepts. */
static const unsigned char *
timestamp_end(const unsigned char *p, const unsigned char *end)
{
    int hi, lo, year, month, day, hour, minute, second;
    /* YYYY-MM-DDTHH:MM:SS is 19 characters, then at least the closing quote. */
    if (end - p < 20) {
        return NULL;
    }
    if (!two_digits(p, &hi) || !two_digits(p + 2, &lo) || p[4] != '-'
        || !two_digits(p + 5, &month) || p[7] != '-' || !two_digits(p + 8, &day)
        || p[10] != 'T' || !two_digits(p + 11, &hour) || p[13] != ':'
        || !two_digits(p + 14, &minute) || p[16] != ':' || !two_digits(p + 17, &second)) {
        return NULL;
    }
    year = hi * 100 + lo;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)
        || hour > 23 || minute > 59 || second > 59) {
        return NULL;
    }
    p += 19;
    if (*p == '.') {
        const unsigned char *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p - digits != 3 && p - digits != 6) {
            return NULL;
        }
    }
    if (p < end && *p == 'Z') {
        p++;
    }
    else if (p < end && (*p == '+' || *p == '-')) {
        int oh, om;
        if (end - p < 7 || !two_digits(p + 1, &oh) || p[3] != ':' || !two_digits(p + 4, &om)
            || oh > 23 || om > 59) {
            return NULL;
        }
        p += 6;
    }
    return p < end && *p == '"' ? p : NULL;
}

/* ID_BYTE[c]: c may be in an id: printable ASCII (0x20-0x7e) except '"' and '\\'. */
static unsigned char ID_BYTE[256];

static void
init_id_bytes(void)
{
    for (int c = 0x20; c <= 0x7e; c++) {
        ID_BYTE[c] = c != '"' && c != '\\';
    }
}

/* An id from p up to its closing quote: that quote's position, or NULL if it is not 1 to
 * MAX_ID_CHARS bytes of ID_BYTE or is all spaces. */
static const unsigned char *
id_end(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *start = p;
    const unsigned char *limit = end - p > MAX_ID_CHARS ? p + MAX_ID_CHARS : end;
    while (p < limit && ID_BYTE[*p]) {
        p++;
    }
    if (p == end || *p != '"' || p == start) {
        return NULL;
    }
    if (*start == ' ') { /* blank unless some byte is not a space */
        const unsigned char *q = start;
        while (q < p && *q == ' ') {
            q++;
        }
        if (q == p) {
            return NULL;
        }
    }
    return p;
}

static uint64_t
hash_id(const char *p, size_t n)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * FNV_PRIME;
    }
    return h;
}

static int
expect(const unsigned char **p, const unsigned char *end, const char *text, size_t len)
{
    if ((size_t)(end - *p) < len || memcmp(*p, text, len) != 0) {
        return 0;
    }
    *p += len;
    return 1;
}

#define EXPECT(p, end, text) expect(&(p), (end), (text), sizeof(text) - 1)

/* A canonical valid event at the start of [line, end): *ev filled and the position after its
 * closing '}' returned (the caller checks that the line ends there), or NULL. It never reads
 * past a newline: none of the accepted characters is one. */
static const char *
accept_event(const char *line, const char *line_limit, Event *ev)
{
    const unsigned char *p = (const unsigned char *)line;
    const unsigned char *end = (const unsigned char *)line_limit;
    const unsigned char *stop;
    int64_t duration;
    if (!EXPECT(p, end, "{\"timestamp\":\"") || (stop = timestamp_end(p, end)) == NULL) {
        return NULL;
    }
    p = stop;
    if (!EXPECT(p, end, "\",\"userId\":\"")) {
        return NULL;
    }
    ev->user = (const char *)p;
    if ((stop = id_end(p, end)) == NULL) {
        return NULL;
    }
    ev->user_len = (uint32_t)(stop - p);
    p = stop;
    if (!EXPECT(p, end, "\",\"eventType\":\"") || (stop = id_end(p, end)) == NULL) {
        return NULL;
    }
    p = stop;
    if (!EXPECT(p, end, "\",\"productId\":\"") || (stop = id_end(p, end)) == NULL) {
        return NULL;
    }
    p = stop;
    if (!EXPECT(p, end, "\",\"sessionDuration\":") || p == end) {
        return NULL;
    }
    if (*p == '0') {
        duration = 0;
        p++;
    }
    else {
        const unsigned char *digits = p;
        duration = 0;
        while (p < end && *p >= '0' && *p <= '9' && p - digits < 10) {
            duration = duration * 10 + (*p - '0');
            p++;
        }
        if (p == digits || duration > MAX_SESSION_DURATION) {
            return NULL;
        }
    }
    if (p == end || *p != '}') {
        return NULL;
    }
    ev->duration = duration;
    ev->hash = hash_id(ev->user, ev->user_len);
    return (const char *)p + 1;
}

#define SLOT_TAG(slot) ((uint32_t)((slot) >> 32))
#define SLOT_ENTRY(self, slot) ((Entry *)((self)->arena + (((slot) & 0xffffffffu) - 1) * 8))

static int
grow_table(Totals *self)
{
    size_t size = (self->mask + 1) * 2;
    uint64_t *slots = PyMem_Calloc(size, sizeof(uint64_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i <= self->mask; i++) {
        uint64_t slot = self->slots[i];
        if (slot == 0) {
            continue;
        }
        Entry *entry = SLOT_ENTRY(self, slot);
        size_t j = hash_id(entry->key, entry->len) & (size - 1);
        while (slots[j] != 0) {
            j = (j + 1) & (size - 1);
        }
        slots[j] = slot;
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->mask = size - 1;
    return 0;
}

/* Add ev to the totals: 1 done, 0 not added (a sum would overflow), -1 out of memory. */
static int
add_event(Totals *self, const Event *ev)
{
    uint32_t tag = (uint32_t)(ev->hash >> 32);
    size_t i = ev->hash & self->mask;
    for (;;) {
        uint64_t slot = self->slots[i];
        if (slot == 0) {
            break;
        }
        if (SLOT_TAG(slot) == tag) {
            Entry *entry = SLOT_ENTRY(self, slot);
            if (entry->len == ev->user_len && memcmp(entry->key, ev->user, ev->user_len) == 0) {
                if (entry->sum > INT64_MAX - ev->duration || entry->count == INT64_MAX) {
                    return 0; /* the Python path adds it, with Python's integers */
                }
                entry->sum += ev->duration;
                entry->count += 1;
                return 1;
            }
        }
        i = (i + 1) & self->mask;
    }
    size_t size = (sizeof(Entry) + ev->user_len + 7) & ~(size_t)7;
    if ((self->arena_len + size) / 8 >= UINT32_MAX) {
        return 0; /* 32 GiB of ids: the rest go to the Python path */
    }
    if (self->arena_len + size > self->arena_cap) {
        size_t cap = self->arena_cap * 2 + size;
        char *arena = PyMem_Realloc(self->arena, cap);
        if (arena == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->arena = arena;
        self->arena_cap = cap;
    }
    Entry *entry = (Entry *)(self->arena + self->arena_len);
    entry->sum = ev->duration;
    entry->count = 1;
    entry->len = ev->user_len;
    memcpy(entry->key, ev->user, ev->user_len);
    self->slots[i] = (uint64_t)tag << 32 | (self->arena_len / 8 + 1);
    self->arena_len += size;
    self->used += 1;
    if (self->used * 10 > (self->mask + 1) * 7 && grow_table(self) < 0) {
        return -1;
    }
    return 1;
}

static PyObject *
Totals_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":Totals", keywords)) {
        return NULL;
    }
    Totals *self = (Totals *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->slots = PyMem_Calloc(INITIAL_SLOTS, sizeof(uint64_t));
    self->arena_cap = 64 * INITIAL_SLOTS;
    self->arena = PyMem_Malloc(self->arena_cap);
    if (self->slots == NULL || self->arena == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->mask = INITIAL_SLOTS - 1;
    return (PyObject *)self;
}

static void
Totals_dealloc(Totals *self)
{
    PyMem_Free(self->slots);
    PyMem_Free(self->arena);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(feed_doc,
"feed(data, end=-1, /) -> (lines, others)\n\n"
"Scan data[:end] (all of data if end < 0), lines split at b'\\n' as bytes.split does (an\n"
"empty range is one empty line). Canonical valid lines are added to the totals; ``others``\n"
"lists (index, line) of every other line, index 0-based, for the Python path to decide.");

static PyObject *
Totals_feed(Totals *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t end = -1;
    Py_ssize_t index = 0;
    Event ev;
    if (!PyArg_ParseTuple(args, "y*|n:feed", &view, &end)) {
        return NULL;
    }
    if (end < 0 || end > view.len) {
        end = view.len;
    }
    PyObject *others = PyList_New(0);
    if (others == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const char *p = view.buf;
    const char *stop = p + end;
    for (;; index++) {
        const char *line_end = accept_event(p, stop, &ev);
        int added = 0;
        if (line_end != NULL && (line_end == stop || *line_end == '\n')) {
            added = add_event(self, &ev);
            if (added < 0) {
                goto error;
            }
        }
        else {
            line_end = memchr(p, '\n', (size_t)(stop - p));
            line_end = line_end != NULL ? line_end : stop;
        }
        if (!added) {
            PyObject *item = Py_BuildValue("(ny#)", index, p, (Py_ssize_t)(line_end - p));
            if (item == NULL || PyList_Append(others, item) < 0) {
                Py_XDECREF(item);
                goto error;
            }
            Py_DECREF(item);
        }
        if (line_end == stop) {
            break;
        }
        p = line_end + 1;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nN)", index + 1, others);
error:
    PyBuffer_Release(&view);
    Py_DECREF(others);
    return NULL;
}

PyDoc_STRVAR(to_dict_doc,
"to_dict() -> {userId: [total, count]}: the totals of every line accepted so far.");

static PyObject *
Totals_to_dict(Totals *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result = PyDict_New();
    if (result == NULL) {
        return NULL;
    }
    for (size_t off = 0; off < self->arena_len;) {
        Entry *entry = (Entry *)(self->arena + off);
        off += (sizeof(Entry) + entry->len + 7) & ~(size_t)7;
        PyObject *key = PyUnicode_DecodeASCII(entry->key, entry->len, NULL);
        PyObject *value = Py_BuildValue("[LL]", (long long)entry->sum, (long long)entry->count);
        if (key == NULL || value == NULL || PyDict_SetItem(result, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return result;
}

static Py_ssize_t
Totals_len(Totals *self)
{
    return (Py_ssize_t)self->used;
}

static PyMethodDef Totals_methods[] = {
    {"feed", (PyCFunction)Totals_feed, METH_VARARGS, feed_doc},
    {"to_dict", (PyCFunction)Totals_to_dict, METH_NOARGS, to_dict_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Totals_as_sequence = {
    .sq_length = (lenfunc)Totals_len,
};

static PyTypeObject TotalsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "event_pipeline._fastscan.Totals",
    .tp_doc = PyDoc_STR("Totals() -> per-user totals of canonical valid lines (see feed)."),
    .tp_basicsize = sizeof(Totals),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Totals_new,
    .tp_dealloc = (destructor)Totals_dealloc,
    .tp_methods = Totals_methods,
    .tp_as_sequence = &Totals_as_sequence,
};

PyDoc_STRVAR(check_line_doc,
"check_line(line, /) -> (userId, sessionDuration) or None\n\n"
"What the fast path makes of one line (without its newline): the event if the line is\n"
"canonical and valid, None if it goes to the Python path.");

static PyObject *
check_line(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    Event ev;
    PyObject *result;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const char *line = view.buf;
    if (accept_event(line, line + view.len, &ev) == line + view.len) {
        result = Py_BuildValue("(s#L)", ev.user, (Py_ssize_t)ev.user_len, (long long)ev.duration);
    }
    else {
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef module_methods[] = {
    {"check_line", check_line, METH_O, check_line_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fastscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "event_pipeline._fastscan",
    .m_doc = PyDoc_STR("The aggregator's fast path for canonical lines (see _fastscan.c)."),
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__fastscan(void)
{
    init_id_bytes();
    if (PyType_Ready(&TotalsType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fastscan_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "MAX_ID_CHARS", MAX_ID_CHARS) < 0
        || PyModule_AddIntConstant(module, "MAX_SESSION_DURATION", MAX_SESSION_DURATION) < 0
        || PyModule_AddType(module, &TotalsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
