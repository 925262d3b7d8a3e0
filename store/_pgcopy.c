/* Rows in PostgreSQL's binary COPY format, for store/query/bulk.py's insert_rows.
 *
 * copy_binary(rows, kinds) -> bytes: the whole COPY ... FROM STDIN (FORMAT BINARY) stream of
 * ``rows`` (tuples with one value per column, None for NULL): the signature, the rows, the
 * trailer. ``kinds`` has one letter per column, naming the column's binary input:
 *   't' text or varchar: a str, as UTF-8;
 *   'j' jsonb: a str of JSON text, after jsonb's version byte (1);
 *   'b' bytea: bytes, as they are;
 *   'q' int8, 'i' int4: an int, big-endian;
 *   'B' bool: True or False.
 * psycopg's Copy.write_row formats the same bytes a row at a time through its dumpers, with a
 * Python call per row and per JSON value; here the stream is sized first, then written once.
 * A value of the wrong type raises TypeError, an int beyond its column OverflowError, a str
 * that is not encodable (a lone surrogate) UnicodeEncodeError: nothing is sent.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const char SIGNATURE[19] = "PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"; /* + flags, header extension */

/* The bytes of one field's value (after its 4-byte length), or -1 with an error set; *data is
 * the value's own bytes for 't', 'j' and 'b'. NULL is size -2 (written as length -1). */
static Py_ssize_t field_size(PyObject *v, char kind, const char **data) {
    *data = NULL;
    if (v == Py_None) return -2;
    switch (kind) {
    case 't':
    case 'j': {
        Py_ssize_t n;
        if (!PyUnicode_Check(v)) break;
        *data = PyUnicode_AsUTF8AndSize(v, &n);
        if (*data == NULL) return -1;
        return kind == 'j' ? n + 1 : n;
    }
    case 'b':
        if (!PyBytes_Check(v)) break;
        *data = PyBytes_AS_STRING(v);
        return PyBytes_GET_SIZE(v);
    case 'q':
    case 'i': {
        if (!PyLong_Check(v)) break;
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred()) return -1;
        if (overflow || (kind == 'i' && (n < INT32_MIN || n > INT32_MAX))) {
            PyErr_SetString(PyExc_OverflowError, "an integer out of its column's range");
            return -1;
        }
        return kind == 'q' ? 8 : 4;
    }
    case 'B':
        if (!PyBool_Check(v)) break;
        return 1;
    default:
        PyErr_Format(PyExc_ValueError, "no column kind '%c'", kind);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "%.100s value for a column of kind '%c'", Py_TYPE(v)->tp_name, kind);
    return -1;
}

static uint8_t *put_be(uint8_t *out, uint64_t v, int n) {
    for (int i = 0; i < n; i++) out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return out + n;
}

static uint8_t *put_field(uint8_t *out, PyObject *v, char kind, Py_ssize_t size, const char *data) {
    if (size == -2) return put_be(out, 0xffffffffu, 4);
    out = put_be(out, (uint64_t)size, 4);
    switch (kind) {
    case 'j':
        *out++ = 1; /* jsonb's version */
        memcpy(out, data, (size_t)size - 1);
        return out + size - 1;
    case 'q':
    case 'i':
        return put_be(out, (uint64_t)PyLong_AsLongLong(v), (int)size);
    case 'B':
        *out = v == Py_True;
        return out + 1;
    default: /* 't', 'b' */
        memcpy(out, data, (size_t)size);
        return out + size;
    }
}

static PyObject *copy_binary(PyObject *self, PyObject *args) {
    PyObject *rows;
    const char *kinds;
    Py_ssize_t ncols;
    if (!PyArg_ParseTuple(args, "Os#", &rows, &kinds, &ncols)) return NULL;
    if (ncols > INT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many columns");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(rows, "rows: a sequence of tuples");
    if (seq == NULL) return NULL;
    Py_ssize_t nrows = PySequence_Fast_GET_SIZE(seq), total = (Py_ssize_t)sizeof SIGNATURE + 2;
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < nrows; i++) { /* sizes, and every value checked */
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ncols) {
            PyErr_Format(PyExc_TypeError, "row %zd: not a tuple of %zd values", i, ncols);
            goto done;
        }
        total += 2;
        for (Py_ssize_t c = 0; c < ncols; c++) {
            const char *data;
            Py_ssize_t size = field_size(PyTuple_GET_ITEM(row, c), kinds[c], &data);
            if (size == -1) goto done;
            if (size > INT32_MAX) {
                PyErr_SetString(PyExc_ValueError, "a value too large for a COPY field");
                goto done;
            }
            total += 4 + (size > 0 ? size : 0);
        }
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) goto done;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    memcpy(p, SIGNATURE, sizeof SIGNATURE);
    p += sizeof SIGNATURE;
    for (Py_ssize_t i = 0; i < nrows; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
        p = put_be(p, (uint64_t)ncols, 2);
        for (Py_ssize_t c = 0; c < ncols; c++) {
            PyObject *v = PyTuple_GET_ITEM(row, c);
            const char *data;
            Py_ssize_t size = field_size(v, kinds[c], &data); /* checked above: no error now */
            p = put_field(p, v, kinds[c], size, data);
        }
    }
    p = put_be(p, 0xffffu, 2); /* the trailer */
done:
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"copy_binary", copy_binary, METH_VARARGS,
     "copy_binary(rows, kinds) -> bytes: rows as a whole binary COPY stream; kinds one of 'tjbqiB' per column."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pgcopy", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pgcopy(void) { return PyModule_Create(&module); }
