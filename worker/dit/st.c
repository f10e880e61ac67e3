/* st — safetensors weights, read in place (see st.h for the contract).
 *
 * Every file of a set is mapped read-only for the set's lifetime. Opening
 * checks every header completely (lengths, offsets, sizes, overlaps) so that
 * a load later can only fail on what the caller asked for: a missing name
 * or a shape the model did not expect. Nothing is copied at open; a load
 * converts exactly the stored bytes of the tensor or slice it was asked for,
 * which is what lets a tensor-parallel rank touch only its share of a
 * checkpoint (and st_bytes_loaded proves it).
 *
 * Tensors are kept sorted by name: st_find is a binary search and a name
 * that appears in two files of a directory is caught while sorting.
 *
 * Loads from several threads at once are safe: the mappings are read-only
 * and the byte counter is atomic, so the ranks of a group may share a set.
 *
 * The format is little-endian; so is every host we build for (checked at
 * compile time below).
 */
#include "st.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "st reads little-endian safetensors data in place; big-endian hosts are not supported"
#endif

#define ST_INDEX_NAME "diffusion_pytorch_model.safetensors.index.json"
#define ST_SINGLE_NAME "diffusion_pytorch_model.safetensors"

typedef struct {
    char *path;
    void *map;
    size_t size;
} st_file;

struct st_set {
    char *path; /* as opened: a file or a directory */
    st_file *files;
    size_t nfiles;
    st_tensor *tensors; /* sorted by name */
    size_t ntensors;
    _Atomic uint64_t bytes_loaded;
};

static void st_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void st_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *st_dtype_name(st_dtype dt)
{
    switch (dt) {
    case ST_F32: return "F32";
    case ST_F16: return "F16";
    case ST_BF16: return "BF16";
    }
    return "?";
}

static size_t st_dtype_size(st_dtype dt)
{
    return dt == ST_F32 ? 4 : 2;
}

/* "[32, 16]" into buf; shapes go into nearly every message. */
static const char *st_shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, len - n, "[");
    for (int i = 0; i < ndim && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < len)
        snprintf(buf + n, len - n, "]");
    return buf;
}

/* ---- conversion ----
 *
 * Plain loops over whole runs with no call per element, so the compiler can
 * vectorise them. Stored data may sit at any byte offset (the format does
 * not promise alignment), hence memcpy for the loads. */

static void st_conv_f32(float *dst, const unsigned char *src, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

static inline void st_bf16_run(float *restrict dst, const unsigned char *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(dst + i, &u, 4);
    }
}

/* Half to single, exact for every input. Moving the exponent/mantissa field
 * up by 13 bits and adding the bias difference (127 - 15 = 112) is right
 * for normal numbers. Inf/NaN need the exponent saturated: add another 112.
 * Zero and subnormals (exponent field 0) are made normal by giving them the
 * smallest half exponent (+1) and then subtracting that exponent's implicit
 * one, 2^-14, which is exact in single precision. Written with selects
 * rather than branches so the loop vectorises. */
static inline void st_f16_run(float *restrict dst, const unsigned char *restrict src, size_t n)
{
    const float two_m14 = 0x1p-14f;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
        uint32_t em = h & 0x7fffu;
        uint32_t exp = em & 0x7c00u;
        uint32_t infnan = 0u - (uint32_t)(exp == 0x7c00u); /* all ones or zero */
        uint32_t small = 0u - (uint32_t)(exp == 0u);
        uint32_t o = (em << 13) + (112u << 23) + (infnan & (112u << 23));
        uint32_t sub = o + (1u << 23);
        float fsub;
        memcpy(&fsub, &sub, 4);
        fsub -= two_m14;
        uint32_t subbits;
        memcpy(&subbits, &fsub, 4);
        o = (o & ~small) | (subbits & small);
        o |= sign;
        memcpy(dst + i, &o, 4);
    }
}

/* Whole blocks of a fixed length first: GCC's -O2 vectoriser only takes
 * loops whose trip count it knows, then the tail. */
enum { ST_VEC = 32 };

static void st_conv_f16(float *restrict dst, const unsigned char *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + ST_VEC <= n; i += ST_VEC)
        st_f16_run(dst + i, src + 2 * i, ST_VEC);
    st_f16_run(dst + i, src + 2 * i, n - i);
}

static void st_conv_bf16(float *restrict dst, const unsigned char *restrict src, size_t n)
{
    size_t i = 0;
    for (; i + ST_VEC <= n; i += ST_VEC)
        st_bf16_run(dst + i, src + 2 * i, ST_VEC);
    st_bf16_run(dst + i, src + 2 * i, n - i);
}

static void st_convert(st_dtype dt, float *dst, const unsigned char *src, size_t n)
{
    switch (dt) {
    case ST_F32: st_conv_f32(dst, src, n); break;
    case ST_F16: st_conv_f16(dst, src, n); break;
    case ST_BF16: st_conv_bf16(dst, src, n); break;
    }
}

/* ---- one file ---- */

static int st_map_file(const char *path, st_file *f, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        st_errf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (sb.st_size < 8) {
        st_errf(err, errlen,
                "%s: truncated file: %lld bytes, a safetensors file starts with an 8-byte header length",
                path, (long long)sb.st_size);
        close(fd);
        return -1;
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        st_errf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        return -1;
    }
    f->map = map;
    f->size = (size_t)sb.st_size;
    return 0;
}

static int st_parse_dtype(const char *s, st_dtype *dt)
{
    if (strcmp(s, "F32") == 0)
        *dt = ST_F32;
    else if (strcmp(s, "F16") == 0)
        *dt = ST_F16;
    else if (strcmp(s, "BF16") == 0)
        *dt = ST_BF16;
    else
        return -1;
    return 0;
}

/* Parse one header entry into t (name set by the caller). Checks that the
 * entry is complete and that its offsets agree with its shape and lie in
 * the data area; overlaps between entries are checked afterwards. */
static int st_parse_entry(const char *path, const char *name, json_t *v, size_t data_len,
                          st_tensor *t, uint64_t *begin, uint64_t *end, char *err,
                          size_t errlen)
{
    if (!json_is_object(v)) {
        st_errf(err, errlen, "%s: tensor %s: header entry is not a JSON object", path, name);
        return -1;
    }
    json_t *jd = json_object_get(v, "dtype");
    json_t *js = json_object_get(v, "shape");
    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd)) {
        st_errf(err, errlen, "%s: tensor %s: missing or non-string \"dtype\"", path, name);
        return -1;
    }
    if (st_parse_dtype(json_string_value(jd), &t->dtype) != 0) {
        st_errf(err, errlen, "%s: tensor %s: dtype %s not supported (want F32, F16 or BF16)",
                path, name, json_string_value(jd));
        return -1;
    }
    if (!json_is_array(js)) {
        st_errf(err, errlen, "%s: tensor %s: missing or non-array \"shape\"", path, name);
        return -1;
    }
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS) {
        st_errf(err, errlen, "%s: tensor %s: %zu dimensions, at most %d supported", path, name,
                nd, ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)nd;
    /* Element counts are bounded by the file size, so an overflowing product
     * is already wrong; stop multiplying once past it. */
    uint64_t elems = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            st_errf(err, errlen, "%s: tensor %s: shape[%zu] is not a non-negative integer", path,
                    name, i);
            return -1;
        }
        t->shape[i] = (int64_t)json_integer_value(d);
        if (t->shape[i] != 0 && elems > UINT64_MAX / 4 / (uint64_t)t->shape[i])
            overflow = 1;
        else
            elems *= (uint64_t)t->shape[i];
    }
    for (size_t i = 0; i < nd; i++)
        if (t->shape[i] == 0)
            overflow = 0, elems = 0;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1)) ||
        json_integer_value(json_array_get(jo, 0)) < 0 ||
        json_integer_value(json_array_get(jo, 1)) < 0) {
        st_errf(err, errlen,
                "%s: tensor %s: \"data_offsets\" missing or not two non-negative integers", path,
                name);
        return -1;
    }
    *begin = (uint64_t)json_integer_value(json_array_get(jo, 0));
    *end = (uint64_t)json_integer_value(json_array_get(jo, 1));
    if (*end < *begin) {
        st_errf(err, errlen, "%s: tensor %s: data_offsets [%llu, %llu] end before begin", path,
                name, (unsigned long long)*begin, (unsigned long long)*end);
        return -1;
    }
    if (*end > data_len) {
        st_errf(err, errlen,
                "%s: tensor %s: data_offsets [%llu, %llu] outside the data area of %zu bytes "
                "(file truncated or header wrong)",
                path, name, (unsigned long long)*begin, (unsigned long long)*end, data_len);
        return -1;
    }
    char sb[160];
    uint64_t want = elems * st_dtype_size(t->dtype);
    if (overflow || *end - *begin != want) {
        st_errf(err, errlen,
                "%s: tensor %s: size mismatch: data_offsets [%llu, %llu] hold %llu bytes, "
                "shape %s of %s needs %s%llu",
                path, name, (unsigned long long)*begin, (unsigned long long)*end,
                (unsigned long long)(*end - *begin), st_shape_str(sb, sizeof sb, t->ndim, t->shape),
                st_dtype_name(t->dtype), overflow ? "more than " : "",
                (unsigned long long)(overflow ? UINT64_MAX / 4 : want));
        return -1;
    }
    t->nbytes = (size_t)want;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    size_t idx;
} st_span;

static int st_span_cmp(const void *a, const void *b)
{
    const st_span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parse file f's header and append its tensors to the set's array. */
static int st_read_header(st_set *set, st_file *f, char *err, size_t errlen)
{
    const unsigned char *base = f->map;
    uint64_t hlen;
    memcpy(&hlen, base, 8);
    if (hlen > f->size - 8) {
        st_errf(err, errlen,
                "%s: header length %llu larger than the file (%zu bytes after the 8-byte length)",
                f->path, (unsigned long long)hlen, f->size - 8);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        st_errf(err, errlen, "%s: malformed JSON header: %s (line %d, column %d)", f->path,
                je.text, je.line, je.column);
        return -1;
    }
    if (!json_is_object(root)) {
        st_errf(err, errlen, "%s: malformed JSON header: not a JSON object", f->path);
        json_decref(root);
        return -1;
    }
    const unsigned char *data = base + 8 + hlen;
    size_t data_len = f->size - 8 - (size_t)hlen;
    size_t n = json_object_size(root);
    st_tensor *grown = realloc(set->tensors, (set->ntensors + n + 1) * sizeof *grown);
    st_span *spans = malloc((n + 1) * sizeof *spans);
    if (!grown || !spans) {
        if (grown)
            set->tensors = grown;
        free(spans);
        json_decref(root);
        st_errf(err, errlen, "%s: out of memory for %zu tensors", f->path, n);
        return -1;
    }
    set->tensors = grown;
    size_t ns = 0;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        st_tensor *t = &set->tensors[set->ntensors];
        memset(t, 0, sizeof *t);
        uint64_t b, e;
        if (st_parse_entry(f->path, key, v, data_len, t, &b, &e, err, errlen) != 0) {
            rc = -1;
            break;
        }
        char *nm = strdup(key);
        if (!nm) {
            st_errf(err, errlen, "%s: out of memory", f->path);
            rc = -1;
            break;
        }
        t->name = nm;
        t->data = data + b;
        t->file = f->path;
        set->ntensors++;
        spans[ns++] = (st_span){b, e, set->ntensors - 1};
    }
    if (rc == 0) {
        /* Empty tensors own no bytes and cannot overlap anything. */
        qsort(spans, ns, sizeof *spans, st_span_cmp);
        uint64_t prev_end = 0;
        size_t prev = SIZE_MAX;
        for (size_t i = 0; i < ns; i++) {
            if (spans[i].begin == spans[i].end)
                continue;
            if (prev != SIZE_MAX && spans[i].begin < prev_end) {
                const st_span *p = NULL;
                for (size_t j = 0; j < i; j++)
                    if (spans[j].idx == prev)
                        p = &spans[j];
                st_errf(err, errlen,
                        "%s: tensors %s [%llu, %llu) and %s [%llu, %llu) overlap in the data area",
                        f->path, set->tensors[prev].name, (unsigned long long)p->begin,
                        (unsigned long long)p->end, set->tensors[spans[i].idx].name,
                        (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
                rc = -1;
                break;
            }
            prev_end = spans[i].end;
            prev = spans[i].idx;
        }
    }
    free(spans);
    json_decref(root);
    return rc;
}

static int st_add_file(st_set *set, const char *path, char *err, size_t errlen)
{
    st_file *grown = realloc(set->files, (set->nfiles + 1) * sizeof *grown);
    if (!grown) {
        st_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    set->files = grown;
    st_file *f = &set->files[set->nfiles];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) {
        st_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    set->nfiles++;
    if (st_map_file(path, f, err, errlen) != 0)
        return -1;
    return st_read_header(set, f, err, errlen);
}

/* ---- sets ---- */

void st_free(st_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->ntensors; i++)
        free((char *)set->tensors[i].name);
    for (size_t i = 0; i < set->nfiles; i++) {
        if (set->files[i].map)
            munmap(set->files[i].map, set->files[i].size);
        free(set->files[i].path);
    }
    free(set->tensors);
    free(set->files);
    free(set->path);
    free(set);
}

static int st_name_cmp(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sort by name; a name twice (only possible across files, JSON objects
 * reject duplicate keys) is an error. */
static int st_sort_names(st_set *set, const char *where, char *err, size_t errlen)
{
    qsort(set->tensors, set->ntensors, sizeof *set->tensors, st_name_cmp);
    for (size_t i = 1; i < set->ntensors; i++) {
        if (strcmp(set->tensors[i - 1].name, set->tensors[i].name) == 0) {
            st_errf(err, errlen, "%s: tensor %s is in both %s and %s", where,
                    set->tensors[i].name, set->tensors[i - 1].file, set->tensors[i].file);
            return -1;
        }
    }
    return 0;
}

static char *st_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int st_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The files named by an index's weight_map, each once, in first-seen order. */
static int st_open_index(st_set *set, const char *dir, const char *index_path, char *err,
                         size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(index_path, 0, &je);
    if (!root) {
        st_errf(err, errlen, "%s: malformed JSON index: %s (line %d, column %d)", index_path,
                je.text, je.line, je.column);
        return -1;
    }
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        st_errf(err, errlen, "%s: index has no \"weight_map\" object", index_path);
        json_decref(root);
        return -1;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const char *fname = json_string_value(v);
        if (!fname || !*fname || strchr(fname, '/') || strcmp(fname, "..") == 0) {
            st_errf(err, errlen, "%s: weight_map entry for tensor %s is not a file name in %s",
                    index_path, key, dir);
            rc = -1;
            break;
        }
        char *full = st_join(dir, fname);
        if (!full) {
            st_errf(err, errlen, "%s: out of memory", index_path);
            rc = -1;
            break;
        }
        int seen = 0;
        for (size_t i = 0; i < set->nfiles && !seen; i++)
            seen = strcmp(set->files[i].path, full) == 0;
        if (!seen)
            rc = st_add_file(set, full, err, errlen);
        free(full);
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        json_decref(root);
        return rc;
    }
    /* The index must tell the truth: each tensor it lists lives in the file
     * it names (a stale index would otherwise load the wrong weights). */
    if (st_sort_names(set, dir, err, errlen) != 0) {
        json_decref(root);
        return -1;
    }
    json_object_foreach(wm, key, v)
    {
        st_tensor probe = {.name = key};
        const st_tensor *t =
            bsearch(&probe, set->tensors, set->ntensors, sizeof probe, st_name_cmp);
        const char *fname = json_string_value(v);
        size_t fl = strlen(fname), tl = t ? strlen(t->file) : 0;
        if (!t || tl < fl + 1 || strcmp(t->file + tl - fl, fname) != 0 ||
            t->file[tl - fl - 1] != '/') {
            st_errf(err, errlen, "%s: index puts tensor %s in %s, but %s", index_path, key,
                    fname, t ? "it is in another file" : "no file has it");
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

static int st_has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* A diffusers model folder: the index if there is one, else the usual single
 * file, else the only *.safetensors file. Several files and no index is an
 * error rather than a guess (variants such as *.fp16.safetensors sit beside
 * the full-precision file in published checkpoints). */
static int st_open_dir(st_set *set, const char *dir, char *err, size_t errlen)
{
    char *p = st_join(dir, ST_INDEX_NAME);
    if (!p) {
        st_errf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    if (st_exists(p)) {
        int rc = st_open_index(set, dir, p, err, errlen);
        free(p);
        return rc;
    }
    free(p);
    p = st_join(dir, ST_SINGLE_NAME);
    if (!p) {
        st_errf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    if (st_exists(p)) {
        int rc = st_add_file(set, p, err, errlen);
        free(p);
        return rc;
    }
    free(p);
    DIR *d = opendir(dir);
    if (!d) {
        st_errf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    char *only = NULL, *index = NULL;
    int nfound = 0, nindex = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (st_has_suffix(de->d_name, ".safetensors")) {
            nfound++;
            free(only);
            only = st_join(dir, de->d_name);
        } else if (st_has_suffix(de->d_name, ".safetensors.index.json")) {
            nindex++;
            free(index);
            index = st_join(dir, de->d_name);
        }
    }
    closedir(d);
    int rc;
    if (nindex == 1 && index) {
        rc = st_open_index(set, dir, index, err, errlen);
    } else if (nindex > 1) {
        st_errf(err, errlen, "%s: %d *.safetensors.index.json files; cannot tell which to use",
                dir, nindex);
        rc = -1;
    } else if (nfound == 1 && only) {
        rc = st_add_file(set, only, err, errlen);
    } else if (nfound == 0) {
        st_errf(err, errlen, "%s: no *.safetensors file in the directory", dir);
        rc = -1;
    } else {
        st_errf(err, errlen,
                "%s: %d *.safetensors files and no index; name the file or add "
                "%s",
                dir, nfound, ST_INDEX_NAME);
        rc = -1;
    }
    free(only);
    free(index);
    return rc;
}

int st_open(const char *path, st_set **out, char *err, size_t errlen)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    st_set *set = calloc(1, sizeof *set);
    if (!set) {
        st_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    atomic_init(&set->bytes_loaded, 0);
    set->path = strdup(path);
    if (!set->path) {
        free(set);
        st_errf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = S_ISDIR(sb.st_mode) ? st_open_dir(set, path, err, errlen)
                                 : st_add_file(set, path, err, errlen);
    if (rc == 0)
        rc = st_sort_names(set, path, err, errlen);
    if (rc != 0) {
        st_free(set);
        return -1;
    }
    *out = set;
    return 0;
}

size_t st_count(const st_set *set)
{
    return set->ntensors;
}

const st_tensor *st_at(const st_set *set, size_t i)
{
    return i < set->ntensors ? &set->tensors[i] : NULL;
}

const st_tensor *st_find(const st_set *set, const char *name)
{
    st_tensor probe = {.name = name};
    return bsearch(&probe, set->tensors, set->ntensors, sizeof probe, st_name_cmp);
}

uint64_t st_bytes_loaded(const st_set *set)
{
    return atomic_load(&((st_set *)set)->bytes_loaded);
}

/* The tensor, checked against the shape the caller expects. */
static const st_tensor *st_checked(const st_set *set, const char *name, int ndim,
                                   const int64_t *shape, char *err, size_t errlen)
{
    const st_tensor *t = st_find(set, name);
    if (!t) {
        st_errf(err, errlen, "%s: tensor %s: not found", set->path, name);
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char a[160], b[160];
        st_errf(err, errlen, "%s: tensor %s: shape %s in file, expected %s", t->file, name,
                st_shape_str(a, sizeof a, t->ndim, t->shape),
                st_shape_str(b, sizeof b, ndim, shape));
        return NULL;
    }
    return t;
}

int st_load(st_set *set, const char *name, int ndim, const int64_t *shape, float *dst,
            char *err, size_t errlen)
{
    if (ndim < 0 || ndim > ST_MAX_DIMS) {
        st_errf(err, errlen, "tensor %s: %d dimensions requested, at most %d", name, ndim,
                ST_MAX_DIMS);
        return -1;
    }
    const st_tensor *t = st_checked(set, name, ndim, shape, err, errlen);
    if (!t)
        return -1;
    size_t n = t->nbytes / st_dtype_size(t->dtype);
    st_convert(t->dtype, dst, t->data, n);
    atomic_fetch_add(&set->bytes_loaded, (uint64_t)t->nbytes);
    return 0;
}

/* A slice along dim is `outer` runs of len*inner contiguous elements, one
 * per index of the dimensions before dim; each run is converted straight
 * from the mapping, so only the slice's own bytes are touched. */
int st_load_slice(st_set *set, const char *name, int ndim, const int64_t *shape, int dim,
                  int64_t start, int64_t len, float *dst, char *err, size_t errlen)
{
    if (ndim < 1 || ndim > ST_MAX_DIMS) {
        st_errf(err, errlen, "tensor %s: slice of a %d-dimensional tensor requested", name, ndim);
        return -1;
    }
    const st_tensor *t = st_checked(set, name, ndim, shape, err, errlen);
    if (!t)
        return -1;
    if (dim < 0 || dim >= ndim) {
        st_errf(err, errlen, "%s: tensor %s: slice along dimension %d of a %d-dimensional tensor",
                t->file, name, dim, ndim);
        return -1;
    }
    if (start < 0 || len < 0 || start > shape[dim] || len > shape[dim] - start) {
        st_errf(err, errlen,
                "%s: tensor %s: slice [%lld, %lld) outside dimension %d of size %lld", t->file,
                name, (long long)start, (long long)start + (long long)len, dim,
                (long long)shape[dim]);
        return -1;
    }
    size_t outer = 1, inner = 1;
    for (int i = 0; i < dim; i++)
        outer *= (size_t)shape[i];
    for (int i = dim + 1; i < ndim; i++)
        inner *= (size_t)shape[i];
    size_t es = st_dtype_size(t->dtype);
    size_t run = (size_t)len * inner;
    const unsigned char *src = t->data;
    for (size_t o = 0; o < outer && run > 0; o++) {
        size_t off = (o * (size_t)shape[dim] + (size_t)start) * inner;
        st_convert(t->dtype, dst + o * run, src + off * es, run);
    }
    atomic_fetch_add(&set->bytes_loaded, (uint64_t)(outer * run * es));
    return 0;
}
