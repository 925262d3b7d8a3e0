/* google.protobuf Struct / Value / ListValue in their wire format -> plain Python values.
 *
 * Span ingestion spends most of its interpreter time walking protobuf Structs one value at a
 * time (a WhichOneof and an attribute read per value, ~2 us each). Reading the serialized bytes
 * here instead builds the same dicts, lists, strings and numbers as server/convert/values.py's
 * reference walk, at a small fraction of the cost. The Python walk stays: it is the fallback
 * when this module was not built, and the reference its tests compare against.
 *
 * Values are read as server/convert/values.py documents: a number that is integral and within
 * +-2**53 becomes an int, other finite numbers a float; NaN and +-Infinity raise NotFinite; a
 * Value with no kind, or null_value, is None. With reject_nul, a string or key holding U+0000
 * raises HasNul. The input is a message protobuf serialized (upb writes each field once):
 * a repeated singular field or a repeated oneof member is read as "the last one wins", as a
 * parser does for scalars; malformed bytes raise ValueError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 200 /* protobuf parsers stop at 100 message levels */
#define EXACT 9007199254740992.0 /* 2**53 */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static PyObject *NotFinite; /* ValueError subclasses, created at import */
static PyObject *HasNul;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    int reject_nul;
    int depth;
} Reader;

static int malformed(void) {
    PyErr_SetString(PyExc_ValueError, "malformed protobuf message");
    return -1;
}

static int read_varint(Reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return malformed();
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return malformed();
}

/* The bytes of a length-delimited field: [*start, *start + *len). */
static int read_len(Reader *r, const uint8_t **start, Py_ssize_t *len) {
    uint64_t n;
    if (read_varint(r, &n) < 0) return -1;
    if (n > (uint64_t)(r->end - r->p)) return malformed();
    *start = r->p;
    *len = (Py_ssize_t)n;
    r->p += n;
    return 0;
}

static int skip(Reader *r, int wire_type) {
    uint64_t ignored;
    const uint8_t *s;
    Py_ssize_t n;
    switch (wire_type) {
    case WT_VARINT: return read_varint(r, &ignored);
    case WT_I64:
        if (r->end - r->p < 8) return malformed();
        r->p += 8;
        return 0;
    case WT_LEN: return read_len(r, &s, &n);
    case WT_I32:
        if (r->end - r->p < 4) return malformed();
        r->p += 4;
        return 0;
    default: return malformed(); /* groups are not used by these messages */
    }
}

static PyObject *text(Reader *r, const uint8_t *s, Py_ssize_t n, int is_key) {
    if (r->reject_nul && memchr(s, 0, (size_t)n) != NULL) {
        PyErr_SetString(HasNul, is_key ? "keys must not contain the NUL character" : "must not contain the NUL character");
        return NULL;
    }
    return PyUnicode_DecodeUTF8((const char *)s, n, "strict");
}

static PyObject *number(double d) {
    if (!isfinite(d)) {
        PyErr_SetString(NotFinite, "numbers must be finite (NaN and infinities have no JSON form)");
        return NULL;
    }
    if (d == floor(d) && -EXACT <= d && d <= EXACT) return PyLong_FromDouble(d);
    return PyFloat_FromDouble(d);
}

static PyObject *parse_struct(Reader *outer, const uint8_t *s, Py_ssize_t n);
static PyObject *parse_list(Reader *outer, const uint8_t *s, Py_ssize_t n);

/* A sub-reader over [s, s + n) one level deeper than ``outer``. */
static int nested(Reader *outer, Reader *inner, const uint8_t *s, Py_ssize_t n) {
    if (outer->depth + 1 > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "nested too deeply");
        return -1;
    }
    inner->p = s;
    inner->end = s + n;
    inner->reject_nul = outer->reject_nul;
    inner->depth = outer->depth + 1;
    return 0;
}

static PyObject *parse_value(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    PyObject *result = Py_NewRef(Py_None);
    while (r.p < r.end) {
        uint64_t tag, v;
        const uint8_t *sub;
        Py_ssize_t len;
        PyObject *next = NULL;
        if (read_varint(&r, &tag) < 0) goto fail;
        int field = (int)(tag >> 3), wt = (int)(tag & 7);
        if (field == 1 && wt == WT_VARINT) { /* null_value */
            if (read_varint(&r, &v) < 0) goto fail;
            next = Py_NewRef(Py_None);
        } else if (field == 2 && wt == WT_I64) { /* number_value */
            double d;
            if (r.end - r.p < 8) {
                malformed();
                goto fail;
            }
            uint64_t bits = 0;
            for (int i = 7; i >= 0; i--) bits = (bits << 8) | r.p[i]; /* little-endian */
            memcpy(&d, &bits, sizeof d);
            r.p += 8;
            next = number(d);
        } else if (field == 3 && wt == WT_LEN) { /* string_value */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = text(&r, sub, len, 0);
        } else if (field == 4 && wt == WT_VARINT) { /* bool_value */
            if (read_varint(&r, &v) < 0) goto fail;
            next = PyBool_FromLong(v != 0);
        } else if (field == 5 && wt == WT_LEN) { /* struct_value */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = parse_struct(&r, sub, len);
        } else if (field == 6 && wt == WT_LEN) { /* list_value */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = parse_list(&r, sub, len);
        } else {
            if (skip(&r, wt) < 0) goto fail;
            continue;
        }
        if (next == NULL) goto fail;
        Py_SETREF(result, next); /* a oneof: the last member read wins */
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

static PyObject *parse_list(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        if (tag == ((1 << 3) | WT_LEN)) { /* values */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            PyObject *item = parse_value(&r, sub, len);
            if (item == NULL) goto fail;
            int rc = PyList_Append(list, item);
            Py_DECREF(item);
            if (rc < 0) goto fail;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            goto fail;
        }
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

/* One map entry of Struct.fields: key (1) and value (2), either may be absent. */
static int parse_entry(Reader *outer, const uint8_t *s, Py_ssize_t n, PyObject *dict) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return -1;
    const uint8_t *key_s = (const uint8_t *)"", *value_s = NULL;
    Py_ssize_t key_n = 0, value_n = 0;
    while (r.p < r.end) {
        uint64_t tag;
        if (read_varint(&r, &tag) < 0) return -1;
        if (tag == ((1 << 3) | WT_LEN)) {
            if (read_len(&r, &key_s, &key_n) < 0) return -1;
        } else if (tag == ((2 << 3) | WT_LEN)) {
            if (read_len(&r, &value_s, &value_n) < 0) return -1;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            return -1;
        }
    }
    /* the value first: a NUL in both is reported as the value's, as the Python walk does */
    PyObject *value = value_s == NULL ? Py_NewRef(Py_None) : parse_value(&r, value_s, value_n);
    if (value == NULL) return -1;
    PyObject *key = text(&r, key_s, key_n, 1);
    if (key == NULL) {
        Py_DECREF(value);
        return -1;
    }
    int rc = PyDict_SetItem(dict, key, value); /* a repeated key: the last one wins */
    Py_DECREF(key);
    Py_DECREF(value);
    return rc;
}

static PyObject *parse_struct(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        if (tag == ((1 << 3) | WT_LEN)) { /* fields */
            if (read_len(&r, &sub, &len) < 0 || parse_entry(&r, sub, len, dict) < 0) goto fail;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            goto fail;
        }
    }
    return dict;
fail:
    Py_DECREF(dict);
    return NULL;
}

static int top_reader(Reader *r, Py_buffer *buf, int reject_nul) {
    r->p = (const uint8_t *)buf->buf;
    r->end = r->p + buf->len;
    r->reject_nul = reject_nul;
    r->depth = 0;
    return 0;
}

static PyObject *py_struct(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"data", "reject_nul", NULL};
    Py_buffer buf;
    int reject_nul = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|$p", names, &buf, &reject_nul)) return NULL;
    Reader r;
    top_reader(&r, &buf, reject_nul);
    r.depth = -1; /* parse_struct's own level is 0 */
    PyObject *out = parse_struct(&r, r.p, r.end - r.p);
    PyBuffer_Release(&buf);
    return out;
}

static PyObject *py_value(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"data", "reject_nul", NULL};
    Py_buffer buf;
    int reject_nul = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|$p", names, &buf, &reject_nul)) return NULL;
    Reader r;
    top_reader(&r, &buf, reject_nul);
    r.depth = -1;
    PyObject *out = parse_value(&r, r.p, r.end - r.p);
    PyBuffer_Release(&buf);
    return out;
}

/* fields(data, numbers): for a message's serialized bytes, the values of its singular message
 * fields numbered in ``numbers`` (a tuple of (number, kind) with kind 's' for a Struct and 'v'
 * for a Value), as a tuple in that order; an absent Struct is an empty dict, an absent Value
 * None. Other fields are skipped. */
static PyObject *py_fields(PyObject *self, PyObject *args) {
    Py_buffer buf;
    PyObject *spec;
    if (!PyArg_ParseTuple(args, "y*O!", &buf, &PyTuple_Type, &spec)) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(spec);
    int numbers[16];
    char kinds[16];
    PyObject *out = NULL;
    if (count > 16) {
        PyErr_SetString(PyExc_ValueError, "at most 16 fields");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        int number;
        const char *kind;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, i), "is", &number, &kind)) goto done;
        if (kind[0] != 's' && kind[0] != 'v') {
            PyErr_SetString(PyExc_ValueError, "kinds are 's' (Struct) or 'v' (Value)");
            goto done;
        }
        numbers[i] = number;
        kinds[i] = kind[0];
    }
    out = PyTuple_New(count);
    if (out == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *absent = kinds[i] == 's' ? PyDict_New() : Py_NewRef(Py_None);
        if (absent == NULL) goto fail;
        PyTuple_SET_ITEM(out, i, absent);
    }
    Reader r;
    top_reader(&r, &buf, 0);
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        int field = (int)(tag >> 3), wt = (int)(tag & 7), at = -1;
        if (wt == WT_LEN)
            for (Py_ssize_t i = 0; i < count; i++)
                if (numbers[i] == field) at = (int)i;
        if (at < 0) {
            if (skip(&r, wt) < 0) goto fail;
            continue;
        }
        if (read_len(&r, &sub, &len) < 0) goto fail;
        PyObject *v = kinds[at] == 's' ? parse_struct(&r, sub, len) : parse_value(&r, sub, len);
        if (v == NULL) goto fail;
        PyObject *old = PyTuple_GET_ITEM(out, at);
        PyTuple_SET_ITEM(out, at, v);
        Py_DECREF(old);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyBuffer_Release(&buf);
    return out;
}

static PyMethodDef methods[] = {
    {"struct", (PyCFunction)(void (*)(void))py_struct, METH_VARARGS | METH_KEYWORDS,
     "struct(data, *, reject_nul=False) -> dict: a serialized google.protobuf.Struct as a dict."},
    {"value", (PyCFunction)(void (*)(void))py_value, METH_VARARGS | METH_KEYWORDS,
     "value(data, *, reject_nul=False): a serialized google.protobuf.Value as a plain value."},
    {"fields", py_fields, METH_VARARGS,
     "fields(data, ((number, 's' | 'v'), ...)) -> tuple: Struct and Value fields of a message."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pbvalues", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pbvalues(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    NotFinite = PyErr_NewException("server._pbvalues.NotFinite", PyExc_ValueError, NULL);
    HasNul = PyErr_NewException("server._pbvalues.HasNul", PyExc_ValueError, NULL);
    if (NotFinite == NULL || HasNul == NULL || PyModule_AddObjectRef(m, "NotFinite", NotFinite) < 0 ||
        PyModule_AddObjectRef(m, "HasNul", HasNul) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
