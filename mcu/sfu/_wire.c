/* The transmitter's per-packet step in one call: copy the RTP header and payload into one
 * buffer, SRTP-protect it with libsrtp, write it to the subscriber's connected socket.
 *
 * mcu/sfu/aiortc_send.py does the same through cffi (buffer slices, a length cell, the cffi
 * call, a memoryview slice, os.write): about a tenth of the server's CPU at 300 subscribers went
 * to that glue (perf, benchmarks/README.md). Built by scripts/build_native beside the compiled
 * modules and used only with them (mcu.infra.native). libsrtp is pylibsrtp's own copy: bind()
 * receives the address of its srtp_protect, send() the session's context, so both sides use the
 * same library and the same session state.
 *
 * Everything runs on the event loop's thread with the GIL held: the socket is non-blocking, and
 * one buffer serves every packet (each is protected and written before the next is copied in).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

typedef int (*protect_fn)(void *context, void *packet, int *length);

enum { SENT = 0, BLOCKED = 1, FAILED = 2, REFUSED = 3 };

#define BUFFER_BYTES 1500

static protect_fn protect = NULL;
static Py_ssize_t max_plain = 0;
static unsigned char buffer[BUFFER_BYTES];
static int protected_length = 0;

PyDoc_STRVAR(bind_doc,
             "bind(protect_address, max_plain_bytes)\n\n"
             "Use the srtp_protect at this address for every packet, and refuse packets longer "
             "than max_plain_bytes (the buffer must also hold libsrtp's trailer).");

static PyObject *wire_bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "bind() takes the protect address and the size limit");
        return NULL;
    }
    void *address = PyLong_AsVoidPtr(args[0]);
    if (address == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "no protect function");
        }
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (limit <= 0 || limit > BUFFER_BYTES) {
        PyErr_SetString(PyExc_ValueError, "the size limit must fit the buffer");
        return NULL;
    }
    protect = (protect_fn)address;
    max_plain = limit;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(send_doc,
             "send(fd, context, header, payload) -> int\n\n"
             "Protect header + payload with the libsrtp session context (an address) and write "
             "it to fd. Returns 0 sent, 1 the socket's buffer is full (the protected packet is "
             "kept for pending()), 2 the write failed (errno is not kept), 3 refused: too long "
             "or libsrtp would not protect it.");

static PyObject *wire_send(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "send() takes fd, context, header and payload");
        return NULL;
    }
    if (protect == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() first");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "not a file descriptor");
        return NULL;
    }
    void *context = PyLong_AsVoidPtr(args[1]);
    if (context == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "no SRTP session");
        }
        return NULL;
    }
    PyObject *header = args[2];
    if (!PyBytes_Check(header)) {
        PyErr_SetString(PyExc_TypeError, "the header must be bytes");
        return NULL;
    }
    Py_buffer payload;
    if (PyObject_GetBuffer(args[3], &payload, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t head = PyBytes_GET_SIZE(header);
    Py_ssize_t size = head + payload.len;
    if (size > max_plain) {
        PyBuffer_Release(&payload);
        return PyLong_FromLong(REFUSED);
    }
    memcpy(buffer, PyBytes_AS_STRING(header), (size_t)head);
    memcpy(buffer + head, payload.buf, (size_t)payload.len);
    PyBuffer_Release(&payload);
    int length = (int)size;
    protected_length = 0;
    if (protect(context, buffer, &length) != 0 || length < 0 || length > BUFFER_BYTES) {
        return PyLong_FromLong(REFUSED);
    }
    protected_length = length;
    if (write((int)fd, buffer, (size_t)length) >= 0) {
        return PyLong_FromLong(SENT);
    }
    return PyLong_FromLong(errno == EAGAIN || errno == EWOULDBLOCK ? BLOCKED : FAILED);
}

PyDoc_STRVAR(pending_doc,
             "pending() -> bytes\n\n"
             "The last packet send() protected (for the transport to queue when the socket was "
             "full); empty if the last send() protected nothing.");

static PyObject *wire_pending(PyObject *module, PyObject *unused) {
    return PyBytes_FromStringAndSize((const char *)buffer, protected_length);
}

static PyMethodDef wire_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))wire_bind, METH_FASTCALL, bind_doc},
    {"send", (PyCFunction)(void (*)(void))wire_send, METH_FASTCALL, send_doc},
    {"pending", wire_pending, METH_NOARGS, pending_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "mcu.sfu._wire",
    "Copy, SRTP-protect and write one RTP packet in one call (mcu.sfu.aiortc_send).", -1,
    wire_methods,
};

PyMODINIT_FUNC PyInit__wire(void) {
    PyObject *module = PyModule_Create(&wire_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "SENT", SENT) < 0 ||
        PyModule_AddIntConstant(module, "BLOCKED", BLOCKED) < 0 ||
        PyModule_AddIntConstant(module, "FAILED", FAILED) < 0 ||
        PyModule_AddIntConstant(module, "REFUSED", REFUSED) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
