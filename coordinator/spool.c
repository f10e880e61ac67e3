/* spool — the spool's layout and its pack files' bookkeeping. See spool.h.
 *
 * The references are a small array sorted by pack number: packs are made
 * in increasing order, so the current one is appended at the end, and only
 * recovery inserts elsewhere. A job's end looks its packs up by bisection.
 */
#include "spool.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_spec.h"
#include "rf_util.h"

typedef struct pack_refs {
    uint32_t pack;
    uint64_t refs;
} pack_refs;

struct spool_packs {
    char dir[RF_PATH_MAX + 16];
    uint32_t cur;  /* the pack taking segments; 0 before the first */
    uint32_t next; /* number of the next pack made */
    int64_t tail;  /* bytes placed in cur */
    pack_refs *v;  /* packs with references, and cur; sorted */
    size_t n, cap;
};

int spool_seg_path(const char *job_dir, uint32_t k, char *buf, size_t len) {
    return rf_fmt(buf, len, "%s/seg-%06u.yuv", job_dir, k);
}

int spool_pack_path(const char *packs_dir, uint32_t pack, char *buf, size_t len) {
    return rf_fmt(buf, len, "%s/%08" PRIu32, packs_dir, pack);
}

int spool_loc_path(const char *job_dir, const char *packs_dir, uint32_t k, spool_loc loc,
                   char *buf, size_t len) {
    return loc.pack ? spool_pack_path(packs_dir, loc.pack, buf, len)
                    : spool_seg_path(job_dir, k, buf, len);
}

/* A pack file's name: its number, 1 to UINT32_MAX, exactly as
 * spool_pack_path writes it. 0 when name is no pack's. */
static uint32_t pack_number(const char *name) {
    if (strlen(name) < 8 || strlen(name) > 10 || strspn(name, "0123456789") != strlen(name))
        return 0;
    unsigned long long v = strtoull(name, NULL, 10);
    char canon[16];
    if (v == 0 || v > UINT32_MAX)
        return 0;
    snprintf(canon, sizeof canon, "%08" PRIu32, (uint32_t)v);
    return strcmp(canon, name) == 0 ? (uint32_t)v : 0;
}

int spool_loc_parse(const char *s, spool_loc *loc) {
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0])) /* strtoull would take spaces and signs */
        return -1;
    unsigned long long pack = strtoull(s, &end, 10);
    if (errno || *end != ':' || pack == 0 || pack > UINT32_MAX)
        return -1;
    const char *o = end + 1;
    if (!isdigit((unsigned char)o[0]))
        return -1;
    long long off = strtoll(o, &end, 10);
    if (errno || *end)
        return -1;
    loc->pack = (uint32_t)pack;
    loc->off = off;
    return 0;
}

int spool_packs_new(const char *root, spool_packs **out, char *err, size_t errlen) {
    *out = NULL;
    spool_packs *sp = calloc(1, sizeof *sp);
    if (!sp) {
        snprintf(err, errlen, "spool: out of memory");
        return -1;
    }
    /* The longest pack path must fit where the commit thread keeps paths. */
    char longest[RF_PATH_MAX];
    if (rf_fmt(sp->dir, sizeof sp->dir, "%s/" SPOOL_PACKS_DIR, root) != 0 ||
        spool_pack_path(sp->dir, UINT32_MAX, longest, sizeof longest) != 0) {
        snprintf(err, errlen, "spool: path too long (at most %d bytes with /" SPOOL_PACKS_DIR
                 "/NNNNNNNNNN): %s", RF_PATH_MAX - 1, root);
        free(sp);
        return -1;
    }
    /* Made here, with the root synced once, so that a pack's creation
     * later needs only its own directory synced. */
    if (mkdir(sp->dir, 0755) == 0) {
        int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rfd >= 0) {
            fsync(rfd);
            close(rfd);
        }
    }
    DIR *d = opendir(sp->dir);
    if (!d) {
        snprintf(err, errlen, "spool: cannot list %s: %s", sp->dir, strerror(errno));
        free(sp);
        return -1;
    }
    uint32_t highest = 0;
    for (struct dirent *e; (e = readdir(d));) {
        uint32_t no = pack_number(e->d_name);
        if (no > highest)
            highest = no;
    }
    closedir(d);
    sp->next = highest == UINT32_MAX ? 0 : highest + 1; /* 0: none left */
    *out = sp;
    return 0;
}

void spool_packs_free(spool_packs *sp) {
    if (!sp)
        return;
    free(sp->v);
    free(sp);
}

const char *spool_packs_dir(const spool_packs *sp) {
    return sp->dir;
}

/* Index of pack in v, or where it would go (*found 0). */
static size_t find(const spool_packs *sp, uint32_t pack, int *found) {
    size_t lo = 0, hi = sp->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sp->v[mid].pack < pack)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < sp->n && sp->v[lo].pack == pack;
    return lo;
}

/* The entry of pack, made with no references if need be; NULL when out
 * of memory. */
static pack_refs *entry(spool_packs *sp, uint32_t pack) {
    int found;
    size_t i = find(sp, pack, &found);
    if (found)
        return &sp->v[i];
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? 2 * sp->cap : 16;
        pack_refs *v = realloc(sp->v, cap * sizeof *v);
        if (!v)
            return NULL;
        sp->v = v;
        sp->cap = cap;
    }
    memmove(&sp->v[i + 1], &sp->v[i], (sp->n - i) * sizeof *sp->v);
    sp->n++;
    sp->v[i] = (pack_refs){.pack = pack, .refs = 0};
    return &sp->v[i];
}

static void drop_entry(spool_packs *sp, uint32_t pack) {
    int found;
    size_t i = find(sp, pack, &found);
    if (found) {
        memmove(&sp->v[i], &sp->v[i + 1], (sp->n - i - 1) * sizeof *sp->v);
        sp->n--;
    }
}

int64_t spool_packs_place(spool_packs *sp, size_t len, spool_loc *loc) {
    uint32_t retired = 0;
    if (!sp->cur || (sp->tail > 0 && (uint64_t)sp->tail + len > SPOOL_PACK_BYTES)) {
        if (!sp->next || !entry(sp, sp->next))
            return -1;
        pack_refs *old = sp->cur ? entry(sp, sp->cur) : NULL;
        if (old && old->refs == 0) {
            retired = sp->cur;
            drop_entry(sp, retired);
        }
        sp->cur = sp->next;
        sp->next = sp->next == UINT32_MAX ? 0 : sp->next + 1;
        sp->tail = 0;
    }
    pack_refs *e = entry(sp, sp->cur); /* there: made above or when it became cur */
    e->refs++;
    loc->pack = sp->cur;
    loc->off = sp->tail;
    sp->tail += (int64_t)len;
    return retired;
}

int spool_packs_ref(spool_packs *sp, uint32_t pack) {
    pack_refs *e = entry(sp, pack);
    if (!e)
        return -1;
    e->refs++;
    return 0;
}

int spool_packs_unref(spool_packs *sp, uint32_t pack) {
    int found;
    size_t i = find(sp, pack, &found);
    if (!found || sp->v[i].refs == 0)
        return 0;
    if (--sp->v[i].refs > 0 || pack == sp->cur)
        return 0;
    drop_entry(sp, pack);
    return 1;
}

unsigned spool_packs_sweep(spool_packs *sp) {
    DIR *d = opendir(sp->dir);
    if (!d)
        return 0;
    unsigned removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        uint32_t no = pack_number(e->d_name);
        int found;
        if (!no || no == sp->cur)
            continue;
        find(sp, no, &found);
        char path[RF_PATH_MAX + 64];
        if (!found && spool_pack_path(sp->dir, no, path, sizeof path) == 0 && unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
