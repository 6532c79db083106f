/* The plain-member fast path of slimscope.image.tarstream.TarStream.feed.
 *
 * Hand-written in C because measurement says so: the Python member loop costs about 7 us per tar
 * member (about 50,000 instructions under callgrind), which on layers of many small files is most of
 * the read (210,000 members: 1.56 s of parsing against a 0.24 s floor for reading and hashing the
 * bytes at all). This loop does the same work for the members that make up nearly every layer and
 * hands back to the Python parser at anything else:
 *
 *   - a header with the ustar magic (the Python parser skips the checksum for those too: every layer
 *     is sha256-verified as a whole) and type 0, 7, NUL (regular), 5 (directory), 2 (symlink) or
 *     1 (hard link);
 *   - numeric fields of plain octal digits (up to the first NUL, blanks around them allowed);
 *   - names and hard-link targets that normalise by stripping "./" and "/" alone (no "." component,
 *     none starting "..", no "//"); an empty regular file whose base name starts ".wh." is a
 *     whiteout, an opaque marker or other AUFS metadata, as the Python parser reads it;
 *   - regular files that the package and config readers do not capture (path prefixes and suffixes
 *     passed in).
 *
 * Anything else (PAX and GNU extended headers, sparse files, devices, whiteouts with data or of
 * another type, old v7 headers, odd numbers, the end marker) stops the loop at that header: the
 * Python parser, which understands every case, takes it and calls back in. It is only called in a
 * clean state (no extended header pending or in force), so a member it takes reads exactly as the
 * Python parser would read it; the tests run both on the same streams, chunked every way, and
 * compare every column and every error.
 *
 * A file whose data lies inside the chunk is hashed by the SHA-256 functions of the OpenSSL library
 * that hashlib already loaded (found with dlopen(RTLD_NOLOAD), checked against hashlib on a test
 * vector at import): a hashlib object per file cost its EVP set-up, copy and cleanse, about 1.5 us
 * and 35% of this loop's instructions on 105k small files. Without that library (another hashlib
 * build, another platform) hashlib's sha256 does it, as does it for a file whose data runs past the
 * chunk: that one is handed back with its hash object, and the Python parser feeds it the rest.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#ifndef _WIN32
#include <dlfcn.h>
#endif

/* slimscope.image.layer's member kinds */
enum {
    FILE_KIND = 0,
    DIR_KIND = 1,
    SYMLINK_KIND = 2,
    HARDLINK_KIND = 3,
    WHITEOUT_KIND = 7,
    OPAQUE_KIND = 8,
    OTHER_WH_KIND = 9
};
#define BLOCK 512

static PyObject *sha256_ctor;   /* hashlib.sha256 */
static PyObject *empty_digest;  /* sha256(b"").digest() */
static PyObject *s_digest, *s_frombytes, *s_paths, *s_kinds, *s_sizes, *s_modes, *s_uids,
    *s_gids, *s_mtimes, *s_digests, *s_links;

/* A growable byte buffer for one column of this call's members. */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_add(Buf *b, const void *src, Py_ssize_t n) {
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) cap *= 2;
        char *data = PyMem_Realloc(b->data, (size_t)cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

static int is_blank(unsigned char c) {
    /* The characters Python's int() strips around digits. */
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* A numeric field as the Python parser reads it, in the one form this path takes: the text up to
 * the first NUL, blanks around it, octal digits (none at all: 0). Anything else returns -1 (the
 * Python parser decides: base-256, signs, underscores, errors). */
static long long octal(const unsigned char *field, Py_ssize_t width) {
    Py_ssize_t end = 0;
    while (end < width && field[end]) end++;
    if (end == 0) return 0;
    Py_ssize_t start = 0;
    while (start < end && is_blank(field[start])) start++;
    while (end > start && is_blank(field[end - 1])) end--;
    if (start == end) return -1; /* blanks only: the Python parser's fallback reads 0; let it */
    long long value = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        unsigned char c = field[i];
        if (c < '0' || c > '7') return -1;
        value = value * 8 + (c - '0');
    }
    return value; /* at most 12 digits: below 2**36 */
}

static const unsigned char *find2(const unsigned char *s, Py_ssize_t n, char a, char b) {
    for (Py_ssize_t i = 0; i + 1 < n; i++)
        if (s[i] == a && s[i + 1] == b) return s + i;
    return NULL;
}

/* Normalise a member name (or hard-link target) in place of tarstream.normalize, when that needs
 * no more than stripping: leading "./" pairs, then "/" at both ends. Returns 0 with [*start, *end)
 * set, or -1 when the name may need posixpath.normpath: "//", "/./", a trailing "/.", ".", or a
 * component starting ".." (the Python parser also reports a "../" that climbs out of the root). */
static int normalize(const unsigned char *name, Py_ssize_t n, Py_ssize_t *start, Py_ssize_t *end) {
    Py_ssize_t s = 0, e = n;
    while (e - s >= 2 && name[s] == '.' && name[s + 1] == '/') s += 2;
    while (s < e && name[s] == '/') s++;
    while (e > s && name[e - 1] == '/') e--;
    if (s == e) return -1;
    const unsigned char *p = name + s;
    Py_ssize_t len = e - s;
    if (find2(p, len, '/', '/') || (p[0] == '.' && len >= 2 && p[1] == '.')) return -1;
    if (len == 1 && p[0] == '.') return -1;
    if (len >= 2 && p[len - 2] == '/' && p[len - 1] == '.') return -1;
    for (Py_ssize_t i = 0; i + 2 < len; i++) /* "/./" and "/.." in one pass */
        if (p[i] == '/' && p[i + 1] == '.' && (p[i + 2] == '/' || p[i + 2] == '.')) return -1;
    *start = s;
    *end = e;
    return 0;
}

/* Whether a regular file's path is one the package and config readers may capture. */
static int capturable(PyObject *prefixes, PyObject *suffixes, const char *path, Py_ssize_t n) {
    if (prefixes == Py_None) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); i++) {
        PyObject *item = PyTuple_GET_ITEM(prefixes, i);
        Py_ssize_t k = PyBytes_GET_SIZE(item);
        if (k <= n && memcmp(path, PyBytes_AS_STRING(item), (size_t)k) == 0) return 1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(suffixes); i++) {
        PyObject *item = PyTuple_GET_ITEM(suffixes, i);
        Py_ssize_t k = PyBytes_GET_SIZE(item);
        if (k <= n && memcmp(path + n - k, PyBytes_AS_STRING(item), (size_t)k) == 0) return 1;
    }
    return 0;
}

/* OpenSSL's low-level SHA-256 (the context is opaque here: 112 bytes in OpenSSL 1.1 and 3). */
typedef int (*sha_init_fn)(void *);
typedef int (*sha_update_fn)(void *, const void *, size_t);
typedef int (*sha_final_fn)(unsigned char *, void *);
static sha_init_fn sha_init;   /* NULL: use hashlib objects */
static sha_init_fn found_init; /* what find_direct_sha256 found and checked */
static sha_update_fn sha_update;
static sha_final_fn sha_final;
typedef union {
    unsigned char bytes[256];
    long long align;
} ShaContext;

#define RELEASE_GIL_BYTES (64 << 10) /* hashing this much lets the hash threads run meanwhile */

/* sha256(data) into out with OpenSSL's functions; -1 if they are not there or fail. */
static int direct_sha256(const unsigned char *data, size_t n, unsigned char *out) {
    if (sha_init == NULL) return -1;
    ShaContext context;
    int ok;
    if (n >= RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        ok = sha_init(&context) && sha_update(&context, data, n) && sha_final(out, &context);
        Py_END_ALLOW_THREADS
    } else {
        ok = sha_init(&context) && sha_update(&context, data, n) && sha_final(out, &context);
    }
    return ok ? 0 : -1;
}

/* Find the SHA-256 functions of the libcrypto hashlib loaded, and keep them if they agree with it. */
static void find_direct_sha256(const unsigned char *expected_abc) {
#ifdef _WIN32
    (void)expected_abc; /* hashlib objects do it there */
#else
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && sha_init == NULL; i++) {
        void *library = dlopen(names[i], RTLD_NOW | RTLD_NOLOAD);
        if (library == NULL) continue;
        sha_init = (sha_init_fn)dlsym(library, "SHA256_Init");
        sha_update = (sha_update_fn)dlsym(library, "SHA256_Update");
        sha_final = (sha_final_fn)dlsym(library, "SHA256_Final");
        if (sha_init == NULL || sha_update == NULL || sha_final == NULL) sha_init = NULL;
        /* the handle stays open: hashlib keeps the library loaded for the process's life anyway */
    }
    unsigned char got[32];
    if (sha_init != NULL && (direct_sha256((const unsigned char *)"abc", 3, got) < 0 ||
                             memcmp(got, expected_abc, 32) != 0))
        sha_init = NULL;
    found_init = sha_init;
#endif
}

/* hashlib.sha256(data) for data in the chunk, without copying it. */
static PyObject *hash_start(const unsigned char *data, Py_ssize_t n) {
    PyObject *view = PyMemoryView_FromMemory((char *)data, n, PyBUF_READ);
    if (view == NULL) return NULL;
    PyObject *hasher = PyObject_CallOneArg(sha256_ctor, view);
    Py_DECREF(view);
    return hasher;
}

/* Append this call's columns to the entries: kinds and digests are bytearrays, the numbers arrays
 * (typecodes "q", and "L" for modes). */
static int flush(PyObject *entries, Buf *kinds, Buf *sizes, Buf *modes, Buf *uids, Buf *gids,
                 Buf *mtimes, Buf *digests) {
    struct {
        PyObject *name;
        Buf *buf;
        int bytearray;
    } cols[] = {{s_kinds, kinds, 1},  {s_digests, digests, 1}, {s_sizes, sizes, 0},
                {s_modes, modes, 0},  {s_uids, uids, 0},       {s_gids, gids, 0},
                {s_mtimes, mtimes, 0}};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        Buf *b = cols[i].buf;
        if (!b->len) continue;
        PyObject *col = PyObject_GetAttr(entries, cols[i].name);
        if (col == NULL) return -1;
        int rc = 0;
        if (cols[i].bytearray) {
            Py_ssize_t old = PyByteArray_Check(col) ? PyByteArray_GET_SIZE(col) : -1;
            if (old < 0) {
                PyErr_SetString(PyExc_TypeError, "entries column is not a bytearray");
                rc = -1;
            } else if (PyByteArray_Resize(col, old + b->len) < 0) {
                rc = -1;
            } else {
                memcpy(PyByteArray_AS_STRING(col) + old, b->data, (size_t)b->len);
            }
        } else {
            PyObject *data = PyBytes_FromStringAndSize(b->data, b->len);
            PyObject *res = data ? PyObject_CallMethodOneArg(col, s_frombytes, data) : NULL;
            Py_XDECREF(data);
            if (res == NULL) rc = -1;
            Py_XDECREF(res);
        }
        Py_DECREF(col);
        if (rc < 0) return -1;
    }
    return 0;
}

PyDoc_STRVAR(scan_doc,
             "scan(chunk, pos, stop, entries, prefixes, suffixes)\n--\n\n"
             "Parse plain tar members of `chunk` from `pos` (a member header, the parser in a clean "
             "state) into `entries`' columns; stop at the first header at or past `stop` (-1: none), at "
             "a member this path does not take, or at the end of the chunk. `prefixes` and `suffixes` "
             "(tuples of bytes, or None for no capture) mark the regular files left to the Python "
             "parser. Returns (pos, file_bytes, hasher, data_left, skip, index): where it stopped, the "
             "sizes of the regular files it added, and for a file whose data runs past the chunk its "
             "sha256 object, the data still to come and its member index (else None, 0, -1); `skip` is "
             "padding still to come.");

static PyObject *scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "scan() takes 6 arguments");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t stop = PyLong_AsSsize_t(args[2]);
    PyObject *entries = args[3], *prefixes = args[4], *suffixes = args[5];
    PyObject *paths = NULL, *links = NULL, *hasher = NULL, *result = NULL;
    Buf kinds = {0}, sizes = {0}, modes = {0}, uids = {0}, gids = {0}, mtimes = {0}, digests = {0};
    long long file_bytes = 0, data_left = 0, skip = 0;
    Py_ssize_t index = -1;
    static const unsigned char zeros[32];

    if (PyErr_Occurred()) goto done;
    if (prefixes != Py_None && (!PyTuple_Check(prefixes) || !PyTuple_Check(suffixes))) {
        PyErr_SetString(PyExc_TypeError, "prefixes and suffixes must be tuples of bytes");
        goto done;
    }
    for (int t = 0; prefixes != Py_None && t < 2; t++) {
        PyObject *tuple = t ? suffixes : prefixes;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++)
            if (!PyBytes_Check(PyTuple_GET_ITEM(tuple, i))) {
                PyErr_SetString(PyExc_TypeError, "prefixes and suffixes must be tuples of bytes");
                goto done;
            }
    }
    paths = PyObject_GetAttr(entries, s_paths);
    links = paths ? PyObject_GetAttr(entries, s_links) : NULL;
    if (links == NULL) goto done;
    if (!PyList_Check(paths) || !PyDict_Check(links)) {
        PyErr_SetString(PyExc_TypeError, "entries.paths must be a list and entries.links a dict");
        goto done;
    }
    const unsigned char *buf = view.buf;
    const Py_ssize_t size = view.len;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos outside the chunk");
        goto done;
    }

    while (size - pos >= BLOCK && (stop < 0 || pos < stop)) {
        const unsigned char *h = buf + pos;
        if (h[0] == 0 || memcmp(h + 257, "ustar", 5) != 0) break;
        int kind;
        switch (h[156]) {
            case '0': case '7': case 0: kind = FILE_KIND; break;
            case '5': kind = DIR_KIND; break;
            case '2': kind = SYMLINK_KIND; break;
            case '1': kind = HARDLINK_KIND; break;
            default: goto stopped;
        }
        long long mode = octal(h + 100, 8), uid = octal(h + 108, 8), gid = octal(h + 116, 8);
        long long fsize = octal(h + 124, 12), mtime = octal(h + 136, 12);
        if (mode < 0 || uid < 0 || gid < 0 || fsize < 0 || mtime < 0) break;

        /* The name: prefix "/" name for POSIX ustar ("ustar\0"), as the Python parser joins them. */
        unsigned char name[256];
        Py_ssize_t nlen = 0, plen = 0;
        while (nlen < 100 && h[nlen]) nlen++;
        if (memcmp(h + 257, "ustar\0", 6) == 0 && h[345]) {
            while (plen < 155 && h[345 + plen]) plen++;
            memcpy(name, h + 345, (size_t)plen);
            name[plen++] = '/';
        }
        memcpy(name + plen, h, (size_t)nlen);
        nlen += plen;
        Py_ssize_t ns, ne;
        if (normalize(name, nlen, &ns, &ne) < 0) break;
        if (kind != DIR_KIND) { /* a whiteout: a base name starting ".wh.", as the Python parser reads it */
            Py_ssize_t b = ne;
            while (b > ns && name[b - 1] != '/') b--;
            if (ne - b >= 4 && memcmp(name + b, ".wh.", 4) == 0) {
                /* Python's: ".wh." alone, data to skip, a link named like a whiteout */
                if (kind != FILE_KIND || fsize != 0 || ne - b == 4) break;
                if (ne - b == 12 && memcmp(name + b, ".wh..wh..opq", 12) == 0) {
                    kind = OPAQUE_KIND; /* the path is the folder */
                    ne = b > ns ? b - 1 : ns;
                } else if (ne - b >= 8 && memcmp(name + b, ".wh..wh.", 8) == 0) {
                    kind = OTHER_WH_KIND;
                } else { /* the path is the folder's NAME: drop the ".wh." */
                    kind = WHITEOUT_KIND;
                    memmove(name + b, name + b + 4, (size_t)(ne - b - 4));
                    ne -= 4;
                }
            }
        }
        if (kind == FILE_KIND && capturable(prefixes, suffixes, (const char *)name + ns, ne - ns)) break;

        unsigned char link[100];
        Py_ssize_t llen = 0, ls = 0, le = 0;
        if (kind == SYMLINK_KIND || kind == HARDLINK_KIND) {
            while (llen < 100 && h[157 + llen]) llen++;
            memcpy(link, h + 157, (size_t)llen);
            if (kind == HARDLINK_KIND) {
                if (normalize(link, llen, &ls, &le) < 0) break;
            } else {
                le = llen;
            }
        }

        /* Taken: the member goes into the columns. */
        index = PyList_GET_SIZE(paths);
        PyObject *path = PyBytes_FromStringAndSize((const char *)name + ns, ne - ns);
        if (path == NULL) goto done;
        int rc = PyList_Append(paths, path);
        Py_DECREF(path);
        if (rc < 0) goto done;
        if (kind == SYMLINK_KIND || kind == HARDLINK_KIND) {
            PyObject *key = PyLong_FromSsize_t(index);
            PyObject *target = key ? PyBytes_FromStringAndSize((const char *)link + ls, le - ls) : NULL;
            rc = target ? PyDict_SetItem(links, key, target) : -1;
            Py_XDECREF(key);
            Py_XDECREF(target);
            if (rc < 0) goto done;
        }
        unsigned char kind_byte = (unsigned char)kind;
        long long stored_size = kind == FILE_KIND ? fsize : 0;
        unsigned long mode_bits = (unsigned long)(mode & 07777);
        if (buf_add(&kinds, &kind_byte, 1) < 0 || buf_add(&sizes, &stored_size, sizeof stored_size) < 0 ||
            buf_add(&modes, &mode_bits, sizeof mode_bits) < 0 || buf_add(&uids, &uid, sizeof uid) < 0 ||
            buf_add(&gids, &gid, sizeof gid) < 0 || buf_add(&mtimes, &mtime, sizeof mtime) < 0)
            goto done;
        pos += BLOCK;
        if (kind != FILE_KIND) { /* no data area, whatever the size field says */
            if (buf_add(&digests, zeros, 32) < 0) goto done;
            continue;
        }
        file_bytes += fsize;
        if (fsize == 0) {
            if (buf_add(&digests, PyBytes_AS_STRING(empty_digest), 32) < 0) goto done;
            continue;
        }
        long long pad = (BLOCK - fsize % BLOCK) % BLOCK;
        if (fsize > size - pos) { /* runs past the chunk: the Python parser feeds it the rest */
            hasher = hash_start(buf + pos, size - pos);
            if (hasher == NULL || buf_add(&digests, zeros, 32) < 0) goto done;
            data_left = fsize - (size - pos);
            skip = pad;
            pos = size;
            break;
        }
        unsigned char direct[32];
        if (direct_sha256(buf + pos, (size_t)fsize, direct) == 0) {
            if (buf_add(&digests, direct, 32) < 0) goto done;
        } else {
            PyObject *whole = hash_start(buf + pos, (Py_ssize_t)fsize);
            PyObject *digest = whole ? PyObject_CallMethodNoArgs(whole, s_digest) : NULL;
            Py_XDECREF(whole);
            if (digest == NULL) goto done;
            if (!PyBytes_Check(digest) || PyBytes_GET_SIZE(digest) != 32) {
                Py_DECREF(digest);
                PyErr_SetString(PyExc_TypeError, "sha256 digest is not 32 bytes");
                goto done;
            }
            rc = buf_add(&digests, PyBytes_AS_STRING(digest), 32);
            Py_DECREF(digest);
            if (rc < 0) goto done;
        }
        pos += (Py_ssize_t)fsize;
        if (pad > size - pos) {
            skip = pad - (size - pos);
            pos = size;
            break;
        }
        pos += (Py_ssize_t)pad;
    }
stopped:
    if (flush(entries, &kinds, &sizes, &modes, &uids, &gids, &mtimes, &digests) < 0) goto done;
    if (hasher == NULL) index = -1;
    result = Py_BuildValue("nLOLLn", pos, file_bytes, hasher ? hasher : Py_None, data_left, skip, index);
done:
    PyBuffer_Release(&view);
    Py_XDECREF(paths);
    Py_XDECREF(links);
    Py_XDECREF(hasher);
    PyMem_Free(kinds.data);
    PyMem_Free(sizes.data);
    PyMem_Free(modes.data);
    PyMem_Free(uids.data);
    PyMem_Free(gids.data);
    PyMem_Free(mtimes.data);
    PyMem_Free(digests.data);
    return result;
}

PyDoc_STRVAR(direct_doc,
             "direct_sha256(use=None)\n--\n\n"
             "Whether files inside a chunk are hashed by OpenSSL's SHA-256 functions directly (True) "
             "or by hashlib objects (False). `use=False` turns the direct functions off, `use=True` "
             "back on if they were found (for the tests of both).");

static PyObject *direct_sha256_in_use(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs > 1 || (nargs == 1 && args[0] != Py_None && !PyBool_Check(args[0]))) {
        PyErr_SetString(PyExc_TypeError, "direct_sha256(use: bool | None = None)");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) sha_init = args[0] == Py_True ? found_init : NULL;
    return PyBool_FromLong(sha_init != NULL);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {"direct_sha256", (PyCFunction)(void (*)(void))direct_sha256_in_use, METH_FASTCALL, direct_doc},
    {NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *module) {
    (void)module;
    PyObject *hashlib = PyImport_ImportModule("hashlib");
    if (hashlib == NULL) return -1;
    sha256_ctor = PyObject_GetAttrString(hashlib, "sha256");
    Py_DECREF(hashlib);
    if (sha256_ctor == NULL) return -1;
    PyObject *empty = PyObject_CallNoArgs(sha256_ctor);
    if (empty == NULL) return -1;
    s_digest = PyUnicode_InternFromString("digest");
    empty_digest = s_digest ? PyObject_CallMethodNoArgs(empty, s_digest) : NULL;
    Py_DECREF(empty);
    if (empty_digest == NULL || !PyBytes_Check(empty_digest) || PyBytes_GET_SIZE(empty_digest) != 32) return -1;
    PyObject *abc = PyObject_CallFunction(sha256_ctor, "y", "abc");
    PyObject *abc_digest = abc ? PyObject_CallMethodNoArgs(abc, s_digest) : NULL;
    Py_XDECREF(abc);
    if (abc_digest == NULL) return -1;
    if (PyBytes_Check(abc_digest) && PyBytes_GET_SIZE(abc_digest) == 32)
        find_direct_sha256((const unsigned char *)PyBytes_AS_STRING(abc_digest));
    Py_DECREF(abc_digest);
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {{&s_frombytes, "frombytes"}, {&s_paths, "paths"},
                 {&s_kinds, "kinds"},   {&s_sizes, "sizes"},         {&s_modes, "modes"},
                 {&s_uids, "uids"},     {&s_gids, "gids"},           {&s_mtimes, "mtimes"},
                 {&s_digests, "digests"}, {&s_links, "links"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) return -1;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "slimscope.image._tarscan",
    .m_doc = "The plain-member fast path of slimscope's tar parser (see tarstream.py).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC PyInit__tarscan(void) { return PyModuleDef_Init(&moduledef); }
