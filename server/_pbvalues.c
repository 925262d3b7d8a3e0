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
 * raises HasNul. A scalar sent more than once is read as "the last one wins", as a parser
 * does; a message sent more than once where a parser would merge the two (a Value's struct_value
 * or list_value twice in a row, a Struct entry's value twice) raises NeedsMerge, and so do a
 * LogSpans span's message fields sent twice: log_spans hands such a span, and one holding a
 * number without a JSON form, back as its bytes for the caller to parse. Malformed bytes raise
 * ValueError (NotFinite, HasNul and NeedsMerge are ValueErrors too).
 *
 * log_spans reads a whole mlgenai.v1.LogSpansRequest, and otlp_spans an OTLP export request, as
 * plain tuples per span: the server registers those methods without grpc's parse.
 *
 * The other way, it writes plain values as Struct/Value bytes, and a whole mlgenai.v1.Span
 * (encode_span) as upb would from the same values, refusing what upb refuses with the same
 * error class; only a Struct's keys come in the caller's order rather than upb's hash order.
 * read_back gives a JSON value as a Struct gives it back (integral doubles as ints).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 200 /* protobuf parsers stop at 100 message levels */
/* upb's limit, counting a request's top message as level 0 here. The span methods store what
 * they read, and every reader's parser must take it back, in the deepest response that holds
 * spans too (BatchGetTracesResponse > Trace > Span): otlp_spans refuses what upb refuses (a
 * stored span sits no deeper there than in the export request), and log_spans one level more
 * (a LogSpansRequest's spans are one level above that response's). */
#define UPB_DEPTH 100
#define EXACT 9007199254740992.0 /* 2**53 */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static PyObject *NotFinite; /* ValueError subclasses, created at import */
static PyObject *HasNul;
static PyObject *NeedsMerge;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    int reject_nul;
    int depth;
    int max_depth; /* MAX_DEPTH, or UPB_DEPTH where nothing deeper may be stored */
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

/* A message of two length-delimited fields, 1 and 2 (a map entry, an OTLP KeyValue): their
 * bytes; an absent field 1 is empty, an absent field 2 NULL. ``*twos``: how often field 2 came. */
static int read_pair(Reader *r, const uint8_t **one_s, Py_ssize_t *one_n, const uint8_t **two_s, Py_ssize_t *two_n,
                     int *twos) {
    *one_s = (const uint8_t *)"";
    *one_n = 0;
    *two_s = NULL;
    *two_n = 0;
    *twos = 0;
    while (r->p < r->end) {
        uint64_t tag;
        if (read_varint(r, &tag) < 0) return -1;
        if (tag == ((1 << 3) | WT_LEN)) {
            if (read_len(r, one_s, one_n) < 0) return -1;
        } else if (tag == ((2 << 3) | WT_LEN)) {
            if (read_len(r, two_s, two_n) < 0) return -1;
            ++*twos;
        } else if (skip(r, (int)(tag & 7)) < 0) {
            return -1;
        }
    }
    return 0;
}

/* A message field sent twice, which a parser merges: refused with NeedsMerge (the caller reads
 * such a message another way). */
static int needs_merge(void) {
    PyErr_SetString(NeedsMerge, "a message field is sent more than once (to be merged)");
    return -1;
}

static int read_fixed64(Reader *r, uint64_t *out) {
    uint64_t bits = 0;
    if (r->end - r->p < 8) return malformed();
    for (int i = 7; i >= 0; i--) bits = (bits << 8) | r->p[i]; /* little-endian */
    *out = bits;
    r->p += 8;
    return 0;
}

static int read_double(Reader *r, double *out) {
    uint64_t bits;
    if (read_fixed64(r, &bits) < 0) return -1;
    memcpy(out, &bits, sizeof *out);
    return 0;
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
static PyObject *parse_any(Reader *outer, const uint8_t *s, Py_ssize_t n);
static PyObject *parse_value(Reader *outer, const uint8_t *s, Py_ssize_t n);

/* A sub-reader over [s, s + n) one level deeper than ``outer``. */
static int nested(Reader *outer, Reader *inner, const uint8_t *s, Py_ssize_t n) {
    if (outer->depth + 1 > outer->max_depth) {
        PyErr_SetString(PyExc_ValueError, "nested too deeply");
        return -1;
    }
    inner->p = s;
    inner->end = s + n;
    inner->reject_nul = outer->reject_nul;
    inner->depth = outer->depth + 1;
    inner->max_depth = outer->max_depth;
    return 0;
}

/* fn(r, bytes, length, ctx) for each length-delimited field ``number`` left in ``r`` (a repeated
 * message field), the other fields skipped. */
typedef int (*EachFn)(Reader *r, const uint8_t *s, Py_ssize_t n, void *ctx);

static int each_len_field(Reader *r, uint64_t number, EachFn fn, void *ctx) {
    while (r->p < r->end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(r, &tag) < 0) return -1;
        if (tag != ((number << 3) | WT_LEN)) {
            if (skip(r, (int)(tag & 7)) < 0) return -1;
            continue;
        }
        if (read_len(r, &sub, &len) < 0 || fn(r, sub, len, ctx) < 0) return -1;
    }
    return 0;
}

/* What a message [s, s + n) one level below ``outer`` reads as. */
typedef PyObject *(*ParseFn)(Reader *outer, const uint8_t *s, Py_ssize_t n);

typedef struct {
    PyObject *list;
    ParseFn parse;
} Items;

static int append_item(Reader *r, const uint8_t *s, Py_ssize_t n, void *ctx) {
    Items *items = ctx;
    PyObject *item = items->parse(r, s, n);
    if (item == NULL) return -1;
    int rc = PyList_Append(items->list, item);
    Py_DECREF(item);
    return rc;
}

/* The repeated message field 1 of [s, s + n) (ListValue.values, ArrayValue.values) as a list of
 * what ``parse`` reads each as. */
static PyObject *list_of(Reader *outer, const uint8_t *s, Py_ssize_t n, ParseFn parse) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    Items items = {PyList_New(0), parse};
    if (items.list != NULL && each_len_field(&r, 1, append_item, &items) < 0) Py_CLEAR(items.list);
    return items.list;
}

/* The repeated entry field 1 of [s, s + n) (Struct.fields, KeyValueList.values) as a dict, each
 * entry added by ``into``. */
static PyObject *dict_of(Reader *outer, const uint8_t *s, Py_ssize_t n, EachFn into) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    PyObject *dict = PyDict_New();
    if (dict != NULL && each_len_field(&r, 1, into, dict) < 0) Py_CLEAR(dict);
    return dict;
}

/* A two-field entry (a Struct map entry, an OTLP KeyValue) into ``dict``: the key is field 1, the
 * value field 2 as ``parse`` reads it (None when absent); a repeated key: the last one wins.
 * ``value_first``: the value is read before the key, so that a NUL in both is reported as the
 * value's, as the Python walk of a Struct does. */
static int pair_into(Reader *outer, const uint8_t *s, Py_ssize_t n, PyObject *dict, ParseFn parse, int value_first) {
    Reader r;
    const uint8_t *key_s, *value_s;
    Py_ssize_t key_n, value_n;
    PyObject *key = NULL, *value = NULL;
    int rc = -1, twos;
    if (nested(outer, &r, s, n) < 0 || read_pair(&r, &key_s, &key_n, &value_s, &value_n, &twos) < 0) return -1;
    if (twos > 1 && parse == parse_value) return needs_merge(); /* (an OTLP AnyValue: the last wins) */
    if (!value_first && (key = text(&r, key_s, key_n, 1)) == NULL) goto done;
    value = value_s == NULL ? Py_NewRef(Py_None) : parse(&r, value_s, value_n);
    if (value == NULL) goto done;
    if (value_first && (key = text(&r, key_s, key_n, 1)) == NULL) goto done;
    rc = PyDict_SetItem(dict, key, value);
done:
    Py_XDECREF(key);
    Py_XDECREF(value);
    return rc;
}

static int entry_into(Reader *r, const uint8_t *s, Py_ssize_t n, void *dict) {
    return pair_into(r, s, n, dict, parse_value, 1);
}

static int key_value_into(Reader *r, const uint8_t *s, Py_ssize_t n, void *dict) {
    return pair_into(r, s, n, dict, parse_any, 0);
}

static PyObject *parse_value(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    PyObject *result = Py_NewRef(Py_None);
    int member = 0; /* the oneof member read last */
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
            if (read_double(&r, &d) < 0) goto fail;
            next = number(d);
        } else if (field == 3 && wt == WT_LEN) { /* string_value */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = text(&r, sub, len, 0);
        } else if (field == 4 && wt == WT_VARINT) { /* bool_value */
            if (read_varint(&r, &v) < 0) goto fail;
            next = PyBool_FromLong(v != 0);
        } else if (field == 5 && wt == WT_LEN) { /* struct_value */
            if (member == 5 && needs_merge() < 0) goto fail; /* a parser merges the two */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = parse_struct(&r, sub, len);
        } else if (field == 6 && wt == WT_LEN) { /* list_value */
            if (member == 6 && needs_merge() < 0) goto fail;
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = parse_list(&r, sub, len);
        } else {
            if (skip(&r, wt) < 0) goto fail;
            continue;
        }
        if (next == NULL) goto fail;
        Py_SETREF(result, next); /* a oneof: the last member read wins (merged if the same message) */
        member = field;
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

static PyObject *parse_list(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    return list_of(outer, s, n, parse_value);
}

static PyObject *parse_struct(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    return dict_of(outer, s, n, entry_into);
}

static int top_reader(Reader *r, Py_buffer *buf, int reject_nul) {
    r->p = (const uint8_t *)buf->buf;
    r->end = r->p + buf->len;
    r->reject_nul = reject_nul;
    r->depth = 0;
    r->max_depth = MAX_DEPTH;
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

/* -- OTLP KeyValue lists -> dict ------------------------------------------------------------
 *
 * opentelemetry.proto.common.v1: KeyValue {key = 1; AnyValue value = 2}, AnyValue {string 1,
 * bool 2, int64 3, double 4, ArrayValue 5 {repeated AnyValue values = 1}, KeyValueList 6
 * {repeated KeyValue values = 1}, bytes 7, string_value_strindex 8}. As server/otlp.py's
 * any_value: integers beyond +-2**53 become their decimal text, NaN and infinities "NaN",
 * "Infinity", "-Infinity", bytes their base64 text; no value (or a string index) is None. */

static PyObject *b64encode; /* base64.b64encode, imported at module init */

static PyObject *parse_any(Reader *outer, const uint8_t *s, Py_ssize_t n) {
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
        if (field == 1 && wt == WT_LEN) {
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = text(&r, sub, len, 0);
        } else if (field == 2 && wt == WT_VARINT) {
            if (read_varint(&r, &v) < 0) goto fail;
            next = PyBool_FromLong(v != 0);
        } else if (field == 3 && wt == WT_VARINT) {
            if (read_varint(&r, &v) < 0) goto fail;
            int64_t i = (int64_t)v;
            next = (i >= -9007199254740992LL && i <= 9007199254740992LL) ? PyLong_FromLongLong(i)
                                                                          : PyUnicode_FromFormat("%lld", (long long)i);
        } else if (field == 4 && wt == WT_I64) {
            double d;
            if (read_double(&r, &d) < 0) goto fail;
            if (isfinite(d)) next = PyFloat_FromDouble(d);
            else next = PyUnicode_FromString(isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"));
        } else if (field == 5 && wt == WT_LEN) { /* ArrayValue */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = list_of(&r, sub, len, parse_any);
        } else if (field == 6 && wt == WT_LEN) { /* KeyValueList */
            if (read_len(&r, &sub, &len) < 0) goto fail;
            next = dict_of(&r, sub, len, key_value_into);
        } else if (field == 7 && wt == WT_LEN) {
            if (read_len(&r, &sub, &len) < 0) goto fail;
            PyObject *raw = PyBytes_FromStringAndSize((const char *)sub, len);
            if (raw == NULL) goto fail;
            PyObject *encoded = PyObject_CallOneArg(b64encode, raw);
            Py_DECREF(raw);
            if (encoded == NULL) goto fail;
            next = PyUnicode_FromEncodedObject(encoded, "ascii", "strict");
            Py_DECREF(encoded);
        } else if (field == 8 && wt == WT_VARINT) {
            if (read_varint(&r, &v) < 0) goto fail;
            next = Py_NewRef(Py_None);
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

/* key_values(data, number): the repeated KeyValue field ``number`` of a serialized message as a dict. */
static PyObject *py_key_values(PyObject *self, PyObject *args) {
    Py_buffer buf;
    int number;
    if (!PyArg_ParseTuple(args, "y*i", &buf, &number)) return NULL;
    Reader r;
    top_reader(&r, &buf, 0);
    PyObject *dict = PyDict_New();
    if (dict != NULL && (number < 0 || each_len_field(&r, (uint64_t)number, key_value_into, dict) < 0)) {
        if (number < 0) PyErr_SetString(PyExc_ValueError, "a field number");
        Py_CLEAR(dict);
    }
    PyBuffer_Release(&buf);
    return dict;
}

/* -- an OTLP ExportTraceServiceRequest, read at once ------------------------------------
 *
 * otlp_spans(data): [(resource attributes, [span, ...]), ...] per ResourceSpans, a span being
 * (scope index, index in its scope, trace_id, span_id, parent_span_id, name, start, end,
 * status code, status message, attributes, [(event name, time, attributes), ...]): what the
 * server reads of the request, as protobuf's parser would give it. A singular field sent twice:
 * the last wins, and messages (resource, status) merge; a field of a known number but another
 * wire type is an unknown field (skipped). Strings are checked as UTF-8 where they are read;
 * the fields the server does not read (kind, trace_state, links, flags, the scope, schema URLs)
 * are skipped unread. Malformed bytes raise ValueError. */

#define TAG(field, wt) (((uint64_t)(field) << 3) | (wt))

static int set_text(Reader *r, const uint8_t *s, Py_ssize_t n, PyObject **slot) {
    PyObject *value = text(r, s, n, 0);
    if (value == NULL) return -1;
    Py_SETREF(*slot, value);
    return 0;
}

static int set_bytes(const uint8_t *s, Py_ssize_t n, PyObject **slot) {
    PyObject *value = PyBytes_FromStringAndSize((const char *)s, n);
    if (value == NULL) return -1;
    Py_SETREF(*slot, value);
    return 0;
}

/* Event: 1 time_unix_nano (fixed64), 2 name, 3 attributes. */
static PyObject *otlp_event(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    uint64_t time = 0;
    PyObject *name = PyUnicode_FromStringAndSize("", 0), *attrs = PyDict_New();
    if (name == NULL || attrs == NULL) goto fail;
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        if (tag == TAG(1, WT_I64)) {
            if (read_fixed64(&r, &time) < 0) goto fail;
        } else if (tag == TAG(2, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || set_text(&r, sub, len, &name) < 0) goto fail;
        } else if (tag == TAG(3, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || key_value_into(&r, sub, len, attrs) < 0) goto fail;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            goto fail;
        }
    }
    return Py_BuildValue("(NKN)", name, (unsigned long long)time, attrs);
fail:
    Py_XDECREF(name);
    Py_XDECREF(attrs);
    return NULL;
}

/* A status message (OTLP's Status, mlgenai's SpanStatus): its int32 enum code, field
 * ``code_field``, and its message, field 2, into *code and *message; a later status merges
 * into the earlier, as a parser merges it. */
static int read_status(Reader *outer, const uint8_t *s, Py_ssize_t n, int code_field, int32_t *code,
                       PyObject **message) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return -1;
    while (r.p < r.end) {
        uint64_t tag, v;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) return -1;
        if (tag == TAG(code_field, WT_VARINT)) {
            if (read_varint(&r, &v) < 0) return -1;
            *code = (int32_t)(uint32_t)v;
        } else if (tag == TAG(2, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || set_text(&r, sub, len, message) < 0) return -1;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 7 start, 8 end (fixed64),
 * 9 attributes, 11 events, 15 status. */
static PyObject *otlp_span(Reader *outer, const uint8_t *s, Py_ssize_t n, Py_ssize_t scope, Py_ssize_t index) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    uint64_t start = 0, end = 0;
    int32_t code = 0;
    PyObject *trace_id = PyBytes_FromStringAndSize("", 0), *span_id = Py_XNewRef(trace_id);
    PyObject *parent = Py_XNewRef(trace_id), *name = PyUnicode_FromStringAndSize("", 0);
    PyObject *message = Py_XNewRef(name), *attrs = PyDict_New(), *events = PyList_New(0);
    if (trace_id == NULL || name == NULL || attrs == NULL || events == NULL) goto fail;
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        switch (tag) {
        case TAG(1, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || set_bytes(sub, len, &trace_id) < 0) goto fail;
            break;
        case TAG(2, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || set_bytes(sub, len, &span_id) < 0) goto fail;
            break;
        case TAG(4, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || set_bytes(sub, len, &parent) < 0) goto fail;
            break;
        case TAG(5, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || set_text(&r, sub, len, &name) < 0) goto fail;
            break;
        case TAG(7, WT_I64):
            if (read_fixed64(&r, &start) < 0) goto fail;
            break;
        case TAG(8, WT_I64):
            if (read_fixed64(&r, &end) < 0) goto fail;
            break;
        case TAG(9, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || key_value_into(&r, sub, len, attrs) < 0) goto fail;
            break;
        case TAG(11, WT_LEN): {
            if (read_len(&r, &sub, &len) < 0) goto fail;
            PyObject *event = otlp_event(&r, sub, len);
            if (event == NULL) goto fail;
            int rc = PyList_Append(events, event);
            Py_DECREF(event);
            if (rc < 0) goto fail;
            break;
        }
        case TAG(15, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || read_status(&r, sub, len, 3, &code, &message) < 0) goto fail;
            break;
        default:
            if (skip(&r, (int)(tag & 7)) < 0) goto fail;
        }
    }
    return Py_BuildValue("(nnNNNNKKiNNN)", scope, index, trace_id, span_id, parent, name, (unsigned long long)start,
                         (unsigned long long)end, (int)code, message, attrs, events);
fail:
    Py_XDECREF(trace_id);
    Py_XDECREF(span_id);
    Py_XDECREF(parent);
    Py_XDECREF(name);
    Py_XDECREF(message);
    Py_XDECREF(attrs);
    Py_XDECREF(events);
    return NULL;
}

/* ScopeSpans: 2 spans, each appended to ``spans`` with its scope's index and its own. */
typedef struct {
    Py_ssize_t scope, index;
    PyObject *spans;
} ScopeSpans;

static int append_span(Reader *r, const uint8_t *s, Py_ssize_t n, void *ctx) {
    ScopeSpans *at = ctx;
    PyObject *span = otlp_span(r, s, n, at->scope, at->index++);
    if (span == NULL) return -1;
    int rc = PyList_Append(at->spans, span);
    Py_DECREF(span);
    return rc;
}

static int otlp_scope(Reader *outer, const uint8_t *s, Py_ssize_t n, Py_ssize_t scope, PyObject *spans) {
    Reader r;
    ScopeSpans at = {scope, 0, spans};
    if (nested(outer, &r, s, n) < 0) return -1;
    return each_len_field(&r, 2, append_span, &at);
}

/* Resource: 1 attributes; every Resource sent merges into the first. */
static int otlp_resource(Reader *outer, const uint8_t *s, Py_ssize_t n, PyObject *attrs) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return -1;
    return each_len_field(&r, 1, key_value_into, attrs);
}

/* ResourceSpans: 1 resource, 2 scope_spans. */
static PyObject *otlp_resource_spans(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    Py_ssize_t scope = 0;
    if (nested(outer, &r, s, n) < 0) return NULL;
    PyObject *attrs = PyDict_New(), *spans = PyList_New(0);
    if (attrs == NULL || spans == NULL) goto fail;
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        if (tag == TAG(1, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || otlp_resource(&r, sub, len, attrs) < 0) goto fail;
        } else if (tag == TAG(2, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || otlp_scope(&r, sub, len, scope++, spans) < 0) goto fail;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            goto fail;
        }
    }
    return Py_BuildValue("(NN)", attrs, spans);
fail:
    Py_XDECREF(attrs);
    Py_XDECREF(spans);
    return NULL;
}

static int append_resource(Reader *r, const uint8_t *s, Py_ssize_t n, void *out) {
    PyObject *resource = otlp_resource_spans(r, s, n);
    if (resource == NULL) return -1;
    int rc = PyList_Append((PyObject *)out, resource);
    Py_DECREF(resource);
    return rc;
}

static PyObject *py_otlp_spans(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    Reader r;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    top_reader(&r, &buf, 0);
    r.max_depth = UPB_DEPTH;
    PyObject *out = PyList_New(0);
    if (out != NULL && each_len_field(&r, 1, append_resource, out) < 0) Py_CLEAR(out);
    PyBuffer_Release(&buf);
    return out;
}

/* -- mlgenai.v1.LogSpansRequest -> plain spans -------------------------------------------------
 *
 * LogSpansRequest: 1 experiment_id, 2 spans. Span: 1 trace_id, 2 span_id, 3 parent_span_id, 4 name,
 * 5 span_type, 6 start_time_unix_nano, 7 end_time_unix_nano (int64), 8 status (SpanStatus: 1 code,
 * 2 message; a later one merges into the earlier), 9 inputs, 10 outputs (Value), 11 attributes
 * (Struct), 12 events (SpanEvent: 1 name, 2 time_unix_nano, 3 attributes). Every string field is
 * read, so checked as UTF-8, as a parser does; unknown fields are skipped. */

/* SpanEvent -> (name, time_unix_nano, attributes). */
static PyObject *log_event(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    uint64_t time = 0;
    PyObject *name = PyUnicode_FromStringAndSize("", 0), *attrs = NULL;
    if (name == NULL) return NULL;
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        if (tag == TAG(1, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || set_text(&r, sub, len, &name) < 0) goto fail;
        } else if (tag == TAG(2, WT_VARINT)) {
            if (read_varint(&r, &time) < 0) goto fail;
        } else if (tag == TAG(3, WT_LEN)) {
            if (attrs != NULL && needs_merge() < 0) goto fail;
            if (read_len(&r, &sub, &len) < 0 || (attrs = parse_struct(&r, sub, len)) == NULL) goto fail;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            goto fail;
        }
    }
    if (attrs == NULL && (attrs = PyDict_New()) == NULL) goto fail;
    return Py_BuildValue("(NLN)", name, (long long)(int64_t)time, attrs);
fail:
    Py_DECREF(name);
    Py_XDECREF(attrs);
    return NULL;
}

/* A message-valued span field (inputs, outputs, attributes) into *slot: NeedsMerge if sent twice. */
static int set_message(Reader *r, const uint8_t *s, Py_ssize_t n, ParseFn parse, PyObject **slot) {
    if (*slot != NULL) return needs_merge();
    *slot = parse(r, s, n);
    return *slot == NULL ? -1 : 0;
}

/* Span -> (trace_id, span_id, parent_span_id, name, span_type, start, end, code, message, inputs,
 * outputs, attributes, events, its bytes); an absent inputs or outputs is None. */
static PyObject *log_span(Reader *outer, const uint8_t *s, Py_ssize_t n) {
    Reader r;
    if (nested(outer, &r, s, n) < 0) return NULL;
    uint64_t start = 0, end = 0;
    int32_t code = 0;
    PyObject *text_fields[5] = {NULL}; /* trace_id, span_id, parent_span_id, name, span_type */
    PyObject *message = NULL, *inputs = NULL, *outputs = NULL, *attrs = NULL, *events = PyList_New(0);
    PyObject *empty = PyUnicode_FromStringAndSize("", 0);
    if (events == NULL || empty == NULL) goto fail;
    for (int i = 0; i < 5; i++) text_fields[i] = Py_NewRef(empty);
    message = Py_NewRef(empty);
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        int field = (int)(tag >> 3);
        if (field >= 1 && field <= 5 && (tag & 7) == WT_LEN) {
            if (read_len(&r, &sub, &len) < 0 || set_text(&r, sub, len, &text_fields[field - 1]) < 0) goto fail;
            continue;
        }
        switch (tag) {
        case TAG(6, WT_VARINT):
            if (read_varint(&r, &start) < 0) goto fail;
            break;
        case TAG(7, WT_VARINT):
            if (read_varint(&r, &end) < 0) goto fail;
            break;
        case TAG(8, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || read_status(&r, sub, len, 1, &code, &message) < 0) goto fail;
            break;
        case TAG(9, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || set_message(&r, sub, len, parse_value, &inputs) < 0) goto fail;
            break;
        case TAG(10, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || set_message(&r, sub, len, parse_value, &outputs) < 0) goto fail;
            break;
        case TAG(11, WT_LEN):
            if (read_len(&r, &sub, &len) < 0 || set_message(&r, sub, len, parse_struct, &attrs) < 0) goto fail;
            break;
        case TAG(12, WT_LEN): {
            if (read_len(&r, &sub, &len) < 0) goto fail;
            PyObject *event = log_event(&r, sub, len);
            if (event == NULL) goto fail;
            int rc = PyList_Append(events, event);
            Py_DECREF(event);
            if (rc < 0) goto fail;
            break;
        }
        default:
            if (skip(&r, (int)(tag & 7)) < 0) goto fail;
        }
    }
    if (attrs == NULL && (attrs = PyDict_New()) == NULL) goto fail;
    PyObject *proto = PyBytes_FromStringAndSize((const char *)s, n);
    if (proto == NULL) goto fail;
    Py_DECREF(empty);
    return Py_BuildValue("(NNNNNLLiNNNNNN)", text_fields[0], text_fields[1], text_fields[2], text_fields[3],
                         text_fields[4], (long long)(int64_t)start, (long long)(int64_t)end, (int)code, message,
                         inputs ? inputs : Py_NewRef(Py_None), outputs ? outputs : Py_NewRef(Py_None), attrs, events,
                         proto);
fail:
    for (int i = 0; i < 5; i++) Py_XDECREF(text_fields[i]);
    Py_XDECREF(empty);
    Py_XDECREF(message);
    Py_XDECREF(inputs);
    Py_XDECREF(outputs);
    Py_XDECREF(attrs);
    Py_XDECREF(events);
    return NULL;
}

/* A span as log_span reads it; one it cannot read as a parser would (a number that is not finite,
 * a message field to be merged) as its bytes, for the caller to parse. */
static int append_log_span(Reader *r, const uint8_t *s, Py_ssize_t n, void *out) {
    PyObject *span = log_span(r, s, n);
    if (span == NULL) {
        if (!PyErr_ExceptionMatches(NotFinite) && !PyErr_ExceptionMatches(NeedsMerge)) return -1;
        PyErr_Clear();
        if ((span = PyBytes_FromStringAndSize((const char *)s, n)) == NULL) return -1;
    }
    int rc = PyList_Append((PyObject *)out, span);
    Py_DECREF(span);
    return rc;
}

static PyObject *py_log_spans(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    Reader r;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    top_reader(&r, &buf, 0);
    r.max_depth = UPB_DEPTH - 1;
    PyObject *experiment_id = PyUnicode_FromStringAndSize("", 0), *spans = PyList_New(0);
    if (experiment_id == NULL || spans == NULL) goto fail;
    while (r.p < r.end) {
        uint64_t tag;
        const uint8_t *sub;
        Py_ssize_t len;
        if (read_varint(&r, &tag) < 0) goto fail;
        if (tag == TAG(1, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || set_text(&r, sub, len, &experiment_id) < 0) goto fail;
        } else if (tag == TAG(2, WT_LEN)) {
            if (read_len(&r, &sub, &len) < 0 || append_log_span(&r, sub, len, spans) < 0) goto fail;
        } else if (skip(&r, (int)(tag & 7)) < 0) {
            goto fail;
        }
    }
    PyBuffer_Release(&buf);
    return Py_BuildValue("(NN)", experiment_id, spans);
fail:
    PyBuffer_Release(&buf);
    Py_XDECREF(experiment_id);
    Py_XDECREF(spans);
    return NULL;
}

/* -- plain values -> Struct / Value wire bytes -------------------------------------------------
 *
 * As server/convert/values.py's set_struct and set_value fill a message: str a string_value,
 * int and float a number_value (an int too large for a double raises OverflowError), bool a
 * bool_value, None a null_value, dict a struct_value (str keys), list a list_value;
 * anything else raises TypeError. The bytes are meant for MergeFromString. */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int put(Buf *b, const void *bytes, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, bytes, (size_t)n);
    b->len += n;
    return 0;
}

static int varint_bytes(uint8_t tmp[10], uint64_t v) {
    int n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

static int put_varint(Buf *b, uint64_t v) {
    uint8_t tmp[10];
    return put(b, tmp, varint_bytes(tmp, v));
}

static int encode_value(Buf *b, PyObject *obj, int depth);

/* A length-delimited field whose payload ``fill`` writes: reserved room for the length,
 * then moved into place once the payload's size is known. */
#define LEN_ROOM 5

static int begin_len(Buf *b, int field, Py_ssize_t *at) {
    if (put_varint(b, ((uint64_t)field << 3) | WT_LEN) < 0 || buf_reserve(b, LEN_ROOM) < 0) return -1;
    *at = b->len;
    b->len += LEN_ROOM;
    return 0;
}

static int end_len(Buf *b, Py_ssize_t at) {
    Py_ssize_t size = b->len - at - LEN_ROOM;
    uint8_t tmp[10];
    int n = varint_bytes(tmp, (uint64_t)size);
    if (n > LEN_ROOM) {
        PyErr_SetString(PyExc_ValueError, "a value too large to encode");
        return -1;
    }
    memmove(b->data + at + n, b->data + at + LEN_ROOM, (size_t)size);
    memcpy(b->data + at, tmp, (size_t)n);
    b->len -= LEN_ROOM - n;
    return 0;
}

static int put_text(Buf *b, int field, PyObject *str) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(str, &n);
    if (utf8 == NULL) return -1;
    if (put_varint(b, ((uint64_t)field << 3) | WT_LEN) < 0 || put_varint(b, (uint64_t)n) < 0) return -1;
    return put(b, utf8, n);
}

static int encode_struct_fields(Buf *b, PyObject *dict, int depth) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        Py_ssize_t entry, inner;
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "object keys must be strings");
            return -1;
        }
        if (begin_len(b, 1, &entry) < 0 || put_text(b, 1, key) < 0 || begin_len(b, 2, &inner) < 0 ||
            encode_value(b, value, depth + 1) < 0 || end_len(b, inner) < 0 || end_len(b, entry) < 0)
            return -1;
    }
    return 0;
}

static int encode_value(Buf *b, PyObject *obj, int depth) {
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "nested too deeply");
        return -1;
    }
    if (PyUnicode_CheckExact(obj)) return put_text(b, 3, obj);
    if (obj == Py_None) return put(b, "\x08\x00", 2);
    if (PyBool_Check(obj)) return put(b, obj == Py_True ? "\x20\x01" : "\x20\x00", 2);
    if (PyLong_Check(obj) || PyFloat_Check(obj)) {
        double d = PyFloat_Check(obj) ? PyFloat_AS_DOUBLE(obj) : PyLong_AsDouble(obj);
        if (d == -1.0 && PyErr_Occurred()) return -1;
        uint64_t bits;
        uint8_t le[9];
        memcpy(&bits, &d, sizeof bits);
        le[0] = (2 << 3) | WT_I64;
        for (int i = 0; i < 8; i++) le[1 + i] = (uint8_t)(bits >> (8 * i));
        return put(b, le, 9);
    }
    if (PyDict_Check(obj)) {
        Py_ssize_t at;
        if (begin_len(b, 5, &at) < 0 || encode_struct_fields(b, obj, depth) < 0) return -1;
        return end_len(b, at);
    }
    if (PyList_Check(obj)) {
        Py_ssize_t at;
        if (begin_len(b, 6, &at) < 0) return -1;
        PyObject *seq = PySequence_Fast(obj, "a list");
        if (seq == NULL) return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            Py_ssize_t item;
            if (begin_len(b, 1, &item) < 0 || encode_value(b, PySequence_Fast_GET_ITEM(seq, i), depth + 1) < 0 ||
                end_len(b, item) < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
        return end_len(b, at);
    }
    if (PyUnicode_Check(obj)) return put_text(b, 3, obj); /* a str subclass */
    PyErr_Format(PyExc_TypeError, "%.100s is not a JSON value", Py_TYPE(obj)->tp_name);
    return -1;
}

static PyObject *finish(Buf *b, int rc) {
    PyObject *out = rc < 0 ? NULL : PyBytes_FromStringAndSize(b->data ? b->data : "", b->len);
    PyMem_Free(b->data);
    return out;
}

static PyObject *py_encode_value(PyObject *self, PyObject *obj) {
    Buf b = {NULL, 0, 0};
    return finish(&b, encode_value(&b, obj, 0));
}

static PyObject *py_encode_struct(PyObject *self, PyObject *obj) {
    if (!PyDict_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "a dict");
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    return finish(&b, encode_struct_fields(&b, obj, 0));
}

/* -- a whole mlgenai.v1.Span ------------------------------------------------------------ */

/* An int64 field (omitted at 0, as proto3 does); beyond int64 is ValueError, as upb says. */
static int put_int64(Buf *b, int field, PyObject *obj) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow) {
        PyErr_SetString(PyExc_ValueError, "Value out of range");
        return -1;
    }
    if (v == 0) return 0;
    if (put_varint(b, (uint64_t)field << 3 | WT_VARINT) < 0) return -1;
    return put_varint(b, (uint64_t)v);
}

/* A string field, omitted when empty (proto3). */
static int put_string(Buf *b, int field, PyObject *str) {
    if (!PyUnicode_Check(str)) {
        PyErr_SetString(PyExc_TypeError, "a str");
        return -1;
    }
    return PyUnicode_GET_LENGTH(str) ? put_text(b, field, str) : 0;
}

/* A Struct field, omitted when the dict is empty. */
static int put_struct(Buf *b, int field, PyObject *dict) {
    Py_ssize_t at;
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "a dict");
        return -1;
    }
    if (PyDict_GET_SIZE(dict) == 0) return 0;
    if (begin_len(b, field, &at) < 0 || encode_struct_fields(b, dict, 0) < 0) return -1;
    return end_len(b, at);
}

/* A Value field when ``maybe`` is (value,); absent when it is (). */
static int put_maybe_value(Buf *b, int field, PyObject *maybe) {
    Py_ssize_t at;
    if (!PyTuple_Check(maybe) || PyTuple_GET_SIZE(maybe) > 1) {
        PyErr_SetString(PyExc_TypeError, "() or (value,)");
        return -1;
    }
    if (PyTuple_GET_SIZE(maybe) == 0) return 0;
    if (begin_len(b, field, &at) < 0 || encode_value(b, PyTuple_GET_ITEM(maybe, 0), 0) < 0) return -1;
    return end_len(b, at);
}

static int encode_span(Buf *b, PyObject *const *a, PyObject *events) {
    /* a: trace_id, span_id, parent_span_id, name, span_type, start, end, code, message,
     *    inputs, outputs, attributes (fields 1-11 in order, status as code and message) */
    Py_ssize_t at;
    for (int i = 0; i < 5; i++)
        if (put_string(b, i + 1, a[i]) < 0) return -1;
    if (put_int64(b, 6, a[5]) < 0 || put_int64(b, 7, a[6]) < 0) return -1;
    int overflow;
    long long code = PyLong_AsLongLongAndOverflow(a[7], &overflow);
    if (code == -1 && PyErr_Occurred()) return -1;
    if (overflow || code < INT32_MIN || code > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "Value out of range");
        return -1;
    }
    if (begin_len(b, 8, &at) < 0) return -1;
    if (code != 0 && (put_varint(b, 1 << 3 | WT_VARINT) < 0 || put_varint(b, (uint64_t)(int64_t)code) < 0))
        return -1;
    if (put_string(b, 2, a[8]) < 0 || end_len(b, at) < 0) return -1;
    if (put_maybe_value(b, 9, a[9]) < 0 || put_maybe_value(b, 10, a[10]) < 0 || put_struct(b, 11, a[11]) < 0)
        return -1;
    PyObject *seq = PySequence_Fast(events, "events: a list of (name, time_unix_nano, attributes)");
    if (seq == NULL) return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *event = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t ev;
        if (!PyTuple_Check(event) || PyTuple_GET_SIZE(event) != 3) {
            PyErr_SetString(PyExc_TypeError, "an event: (name, time_unix_nano, attributes)");
            goto fail;
        }
        if (begin_len(b, 12, &ev) < 0 || put_string(b, 1, PyTuple_GET_ITEM(event, 0)) < 0 ||
            put_int64(b, 2, PyTuple_GET_ITEM(event, 1)) < 0 || put_struct(b, 3, PyTuple_GET_ITEM(event, 2)) < 0 ||
            end_len(b, ev) < 0)
            goto fail;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static PyObject *py_encode_span(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 13) {
        PyErr_SetString(PyExc_TypeError, "encode_span takes 13 arguments");
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    return finish(&b, encode_span(&b, args, args[12]));
}

/* -- read_back: a JSON value as a Struct gives it back ----------------------------------- */

static PyObject *read_back(PyObject *obj, int depth) {
    if (PyUnicode_CheckExact(obj) || obj == Py_None || PyBool_Check(obj)) return Py_NewRef(obj);
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_RecursionError, "nested too deeply");
        return NULL;
    }
    if (PyDict_CheckExact(obj)) {
        PyObject *out = PyDict_New(), *key, *value;
        Py_ssize_t pos = 0;
        if (out == NULL) return NULL;
        while (PyDict_Next(obj, &pos, &key, &value)) {
            PyObject *v = read_back(value, depth + 1);
            if (v == NULL || PyDict_SetItem(out, key, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(v);
        }
        return out;
    }
    if (PyLong_CheckExact(obj)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (!overflow && v >= -(1LL << 53) && v <= (1LL << 53)) return Py_NewRef(obj);
        double d = PyLong_AsDouble(obj); /* a Struct holds doubles; OverflowError beyond them */
        return d == -1.0 && PyErr_Occurred() ? NULL : PyFloat_FromDouble(d);
    }
    if (PyFloat_CheckExact(obj)) {
        double d = PyFloat_AS_DOUBLE(obj);
        if (d >= -EXACT && d <= EXACT && d == floor(d)) return PyLong_FromDouble(d);
        return Py_NewRef(obj);
    }
    if (PyList_CheckExact(obj)) {
        Py_ssize_t n = PyList_GET_SIZE(obj);
        PyObject *out = PyList_New(n);
        if (out == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = read_back(PyList_GET_ITEM(obj, i), depth + 1);
            if (v == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, i, v);
        }
        return out;
    }
    return Py_NewRef(obj);
}

static PyObject *py_read_back(PyObject *self, PyObject *obj) { return read_back(obj, 0); }

static PyMethodDef methods[] = {
    {"struct", (PyCFunction)(void (*)(void))py_struct, METH_VARARGS | METH_KEYWORDS,
     "struct(data, *, reject_nul=False) -> dict: a serialized google.protobuf.Struct as a dict."},
    {"value", (PyCFunction)(void (*)(void))py_value, METH_VARARGS | METH_KEYWORDS,
     "value(data, *, reject_nul=False): a serialized google.protobuf.Value as a plain value."},
    {"fields", py_fields, METH_VARARGS,
     "fields(data, ((number, 's' | 'v'), ...)) -> tuple: Struct and Value fields of a message."},
    {"key_values", py_key_values, METH_VARARGS,
     "key_values(data, number) -> dict: a message's repeated OTLP KeyValue field as JSON values."},
    {"encode_value", py_encode_value, METH_O, "encode_value(obj) -> bytes: a JSON value as a serialized Value."},
    {"encode_struct", py_encode_struct, METH_O, "encode_struct(dict) -> bytes: a dict as a serialized Struct."},
    {"encode_span", (PyCFunction)(void (*)(void))py_encode_span, METH_FASTCALL,
     "encode_span(trace_id, span_id, parent_span_id, name, span_type, start, end, code, message, inputs, outputs,"
     " attributes, events) -> bytes: a serialized mlgenai.v1.Span; inputs/outputs () or (value,), events"
     " [(name, time_unix_nano, attributes)]."},
    {"otlp_spans", py_otlp_spans, METH_O,
     "otlp_spans(data) -> [(resource attributes, [span tuple, ...]), ...]: a serialized OTLP"
     " ExportTraceServiceRequest as the server reads it."},
    {"log_spans", py_log_spans, METH_O,
     "log_spans(data) -> (experiment_id, [span tuple or span bytes, ...]): a serialized"
     " mlgenai.v1.LogSpansRequest as the server reads it."},
    {"read_back", py_read_back, METH_O, "read_back(value): a JSON value as a Struct gives it back."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pbvalues", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pbvalues(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *base64 = PyImport_ImportModule("base64");
    if (base64 == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    b64encode = PyObject_GetAttrString(base64, "b64encode");
    Py_DECREF(base64);
    if (b64encode == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    NotFinite = PyErr_NewException("server._pbvalues.NotFinite", PyExc_ValueError, NULL);
    HasNul = PyErr_NewException("server._pbvalues.HasNul", PyExc_ValueError, NULL);
    NeedsMerge = PyErr_NewException("server._pbvalues.NeedsMerge", PyExc_ValueError, NULL);
    if (NotFinite == NULL || HasNul == NULL || NeedsMerge == NULL ||
        PyModule_AddObjectRef(m, "NotFinite", NotFinite) < 0 || PyModule_AddObjectRef(m, "HasNul", HasNul) < 0 ||
        PyModule_AddObjectRef(m, "NeedsMerge", NeedsMerge) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
