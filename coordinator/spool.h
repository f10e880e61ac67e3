/* spool — where finished segments' frames wait for the stitcher.
 *
 * Under the coordinator's spool directory (the root):
 *
 *   <root>/<job>/seg-NNNNNN.yuv        a big segment's own file
 *   <root>/<job>/seg-NNNNNN.aA.part    an attempt at one being written
 *   <root>/.packs/NNNNNNNN             pack files: small segments of any job
 *
 * A segment of at most SPOOL_PACK_SEGMENT_MAX bytes is appended to the
 * current pack file instead of getting a file (and its job a directory) of
 * its own. On ext4, creating a directory and a file per job was the bound
 * on tiny segments (the inode allocator scanning the inodes it had just
 * freed), and every job's file cost an fsync per commit group; a pack
 * shared by all jobs is one file created per SPOOL_PACK_BYTES and one fsync
 * per group (bench/README.md).
 *
 * Where a packed segment went (pack number, offset) is recorded with its
 * done state in Redis, which is how a restarted coordinator finds it. A
 * pack is deleted when no unfinished job has a segment in it any more and
 * nothing more will be appended: the packs handle counts, per pack, the
 * segments placed there whose jobs are not over. A crash leaves packs that
 * nothing references; the start-up sweep deletes them after recovery has
 * taken its references. A job that stays unfinished for long keeps the
 * packs holding its segments: at most SPOOL_PACK_BYTES per packed segment.
 *
 * Segments follow one another in a pack, so appending one rewrites the
 * disk block holding the end of the one before, already durable: like
 * SQLite's default ("powersafe overwrite"), this counts on a disk not
 * changing bytes outside the ones written when the power fails.
 *
 * The handle belongs to the coordinator's loop thread; the files are
 * written by the commit thread (commit.h) and read by the stitcher.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stddef.h>
#include <stdint.h>

/* A segment of at most this many bytes goes into a pack (16x16 frames are
 * 384 B; a 1080p frame is 3 MB and always has a file of its own). */
#define SPOOL_PACK_SEGMENT_MAX (64u * 1024u)
/* A pack takes new segments until it holds this many bytes: small enough
 * that a job left unfinished pins little, big enough that creating packs
 * costs nothing (one per ~2,700 16x16 segments). */
#define SPOOL_PACK_BYTES (1u << 20)
/* The packs' directory under the root: job ids never start with '.', so
 * it is no job's spool directory. */
#define SPOOL_PACKS_DIR ".packs"

/* Where a segment's bytes are: at `off` in pack file `pack` (>= 1), or,
 * when pack is 0, from the start of the segment's own file. */
typedef struct spool_loc {
    uint32_t pack;
    int64_t off;
} spool_loc;

/* Segment k's own file in a job's spool directory. 0, or -1 when the path
 * does not fit buf. */
int spool_seg_path(const char *job_dir, uint32_t k, char *buf, size_t len);
/* Pack file `pack` in the packs directory. 0, or -1 when it does not fit. */
int spool_pack_path(const char *packs_dir, uint32_t pack, char *buf, size_t len);
/* The file holding a segment at loc: the pack, or its own file. */
int spool_loc_path(const char *job_dir, const char *packs_dir, uint32_t k, spool_loc loc,
                   char *buf, size_t len);
/* "PACK:OFF", as Redis keeps it; 0 when s is one, filling *loc. */
int spool_loc_parse(const char *s, spool_loc *loc);

typedef struct spool_packs spool_packs;

/* The packs of spool `root` (its packs' directory made if need be): new
 * segments go into a pack numbered above every pack file already there
 * (what is in those belongs to recovery). Fails, saying why, when that
 * directory cannot be listed or its paths would be too long. */
int spool_packs_new(const char *root, spool_packs **out, char *err, size_t errlen);
void spool_packs_free(spool_packs *sp);
const char *spool_packs_dir(const spool_packs *sp);
/* Place a segment of len bytes (<= SPOOL_PACK_SEGMENT_MAX) and reference
 * its pack. Returns the number of a pack the caller must now delete (one
 * that filled up with every segment in it already over), or 0; -1 when out
 * of memory or of pack numbers (nothing placed). */
int64_t spool_packs_place(spool_packs *sp, size_t len, spool_loc *loc);
/* Reference pack (recovery: a done segment found in it). 0, or -1 when out
 * of memory. */
int spool_packs_ref(spool_packs *sp, uint32_t pack);
/* Drop a reference. Returns 1 when the caller must now delete the pack's
 * file (its last segment's job is over and it takes no more), else 0. */
int spool_packs_unref(spool_packs *sp, uint32_t pack);
/* Delete the pack files nothing references (at start-up, after recovery);
 * returns how many. */
unsigned spool_packs_sweep(spool_packs *sp);

#endif
