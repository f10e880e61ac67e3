/* rf_util — clocks, ids, paths and the key=value log line. See rf_util.h. */
#include "rf_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t rf_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rf_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rf_sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void rf_new_id(const char *prefix, char *out, size_t outlen) {
    unsigned char rnd[6] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd) {
        /* No random source: fall back to time and pid, still unique enough
         * for ids that Redis also checks for collisions. */
        uint64_t t = rf_wall_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(rnd, &t, sizeof rnd);
    }
    if (fd >= 0)
        close(fd);
    snprintf(out, outlen, "%s-%02x%02x%02x%02x%02x%02x", prefix, rnd[0], rnd[1], rnd[2], rnd[3],
             rnd[4], rnd[5]);
}

int rf_mkdirs(const char *path, unsigned mode) {
    char buf[4096];
    if (rf_fmt(buf, sizeof buf, "%s", path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Remove the entries of the directory open as dfd (closed here), names
 * relative to it: no path walk per file. */
static int rmtree_fd(int dfd) {
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            is_dir = fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        if (is_dir) {
            int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || rmtree_fd(sub) != 0 || unlinkat(dfd, de->d_name, AT_REMOVEDIR) != 0)
                rc = -1;
        } else if (unlinkat(dfd, de->d_name, 0) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

int rf_populate_read(const void *p, size_t len) {
#ifdef MADV_POPULATE_READ
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(page - 1);
    return madvise((void *)a, (uintptr_t)p + len - a, MADV_POPULATE_READ) == 0 ? 0 : errno;
#else
    (void)p;
    (void)len;
    return EINVAL;
#endif
}

int rf_rmtree(const char *path) {
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -1;
    int rc = rmtree_fd(dfd);
    if (rmdir(path) != 0)
        rc = -1;
    return rc;
}

int rf_fmt(char *buf, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

/* n as `width` decimal digits at p. */
static char *put_digits(char *p, unsigned long n, int width) {
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + n % 10);
        n /= 10;
    }
    return p + width;
}

static void log_line(const char *level, const char *component, const char *fmt, va_list ap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    /* The prefix by hand and the message by one vsnprintf: this runs a few
     * times per segment on the event loops. */
    char line[2300];
    char *p = line;
    p = put_digits(p, (unsigned long)tm.tm_year + 1900, 4);
    *p++ = '-';
    p = put_digits(p, (unsigned long)tm.tm_mon + 1, 2);
    *p++ = '-';
    p = put_digits(p, (unsigned long)tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned long)tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned long)tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned long)tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (unsigned long)(ts.tv_nsec / 1000000L), 3);
    *p++ = 'Z';
    *p++ = ' ';
    size_t ll = strlen(level), cl = strnlen(component, 64);
    memcpy(p, level, ll);
    p += ll;
    for (; ll < 5; ll++)
        *p++ = ' ';
    *p++ = ' ';
    memcpy(p, component, cl);
    p += cl;
    *p++ = ':';
    *p++ = ' ';
    size_t room = sizeof line - (size_t)(p - line) - 1; /* 1 for the newline */
    int n = vsnprintf(p, room, fmt, ap);
    p += n < 0 ? 0 : (size_t)n >= room ? room - 1 : (size_t)n;
    *p++ = '\n';
    /* One write per line so that lines from threads never interleave.
     * Warnings and errors go out at once; with rf_log_buffered, info
     * lines wait for the next rf_log_flush. */
    fwrite(line, 1, (size_t)(p - line), stderr);
    if (level[0] == 'w' || level[0] == 'e')
        fflush(stderr);
}

void rf_log_buffered(void) {
    setvbuf(stderr, NULL, _IOFBF, 1 << 16);
}

void rf_log_flush(void) {
    fflush(stderr);
}

void rf_log(const char *level, const char *component, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line(level, component, fmt, ap);
    va_end(ap);
}

void rf_debug(const char *component, const char *fmt, ...) {
    if (!getenv("RFARM_DEBUG"))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("debug", component, fmt, ap);
    va_end(ap);
}

int rf_list_has(const char *list, const char *item) {
    size_t il = strlen(item);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len == il && strncmp(p, item, il) == 0)
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int rf_id_valid(const char *s) {
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && s[0] != '.' &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

void rf_rate_eta(uint64_t started_ms, uint64_t end_ms, uint64_t done, uint64_t total,
                 double *rate, double *eta) {
    *rate = 0;
    *eta = -1;
    if (!started_ms || end_ms <= started_ms)
        return;
    *rate = (double)done * 1000.0 / (double)(end_ms - started_ms);
    if (done >= total)
        *eta = 0;
    else if (*rate > 0)
        *eta = (double)(total - done) / *rate;
}
