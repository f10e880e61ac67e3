/* st — safetensors weights, read in place.
 *
 * A safetensors file is an 8-byte little-endian header length, a JSON
 * header naming every tensor (dtype, shape, [begin, end) byte offsets into
 * the data area) and the data area. st maps the file read-only and never
 * copies it whole: a tensor is converted to float32 only when a caller
 * loads it, and only the slice the caller asks for, so that a rank of a
 * tensor-parallel group touches only its share of the weights.
 *
 * A checkpoint is one file or a diffusers directory with several files and
 * an index (`*.safetensors.index.json`); st_set hides the difference.
 *
 * Every failure names the file and the tensor and says what is wrong
 * (missing tensor, wrong shape, unsupported dtype, truncated file, offsets
 * outside the data area or overlapping, malformed header).
 */
#ifndef ST_H
#define ST_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32 = 0, ST_F16, ST_BF16 } st_dtype;

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* inside the mapping; valid until the set is freed */
    size_t nbytes;
    const char *file; /* the file it lives in, for messages */
} st_tensor;

typedef struct st_set st_set;

/* Open a .safetensors file, or a directory holding one or more of them
 * (with an index, or a single file). Validates every header up front. */
int st_open(const char *path, st_set **out, char *err, size_t errlen);
void st_free(st_set *set);

size_t st_count(const st_set *set);
const st_tensor *st_at(const st_set *set, size_t i);
/* NULL when absent. */
const st_tensor *st_find(const st_set *set, const char *name);

/* Load tensor `name` as float32 into dst (prod(shape) floats). The stored
 * shape must equal `shape` (ndim dims); f32, f16 and bf16 are converted. */
int st_load(st_set *set, const char *name, int ndim, const int64_t *shape, float *dst,
            char *err, size_t errlen);

/* Load the slice [start, start+len) along dimension `dim` of tensor `name`
 * whose full shape must be `shape`. dst receives the slice densely, in the
 * tensor's own row-major order with dimension `dim` shortened to len.
 * Used by tensor parallelism: a rank loads only its heads / columns. */
int st_load_slice(st_set *set, const char *name, int ndim, const int64_t *shape, int dim,
                  int64_t start, int64_t len, float *dst, char *err, size_t errlen);

/* Bytes of tensor data read from the files by st_load / st_load_slice since
 * the set was opened (stored bytes, before conversion). Tests assert that a
 * rank read only its share. */
uint64_t st_bytes_loaded(const st_set *set);

const char *st_dtype_name(st_dtype dt);

#endif
