/* rf_spec_output — the "output" section of a job spec: where the video
 * goes (made absolute, its directory checked before anything is rendered),
 * in which container and codec, with which x264 preset; and the names of
 * containers and codecs. Part of rf_spec (rf_spec_internal.h). */
#include "rf_spec_internal.h"

#include "rf_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const CONTAINER_NAMES[] = {"mp4", "mkv", "y4m", NULL};
static const char *const CODEC_NAMES[] = {"h264", "ffv1", "rawvideo", NULL};
static const char *const PRESETS[] = {"ultrafast", "superfast", "veryfast", "faster",
                                      "fast",      "medium",    "slow",     "slower",
                                      "veryslow",  "placebo",   NULL};
static const char *const OUTPUT_KEYS[] = {"path", "container", "codec", "quality", "preset", NULL};

/* The output's directory must be there and writable, so that a job is not
 * rendered for hours only to fail at the last step. With may_create, a
 * missing directory is fine when its nearest existing ancestor is a
 * writable directory (the caller creates it once the job is accepted). */
static void check_output_dir(rf_spec_problems *p, const char *path, int may_create) {
    char dir[RF_PATH_MAX], shown[RF_PATH_MAX + 8];
    const char *slash = strrchr(path, '/');
    size_t dlen = (size_t)(slash - path);
    if (dlen == 0)
        dlen = 1; /* the file is in "/" */
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
    rf_spec_clean(dir, RF_PATH_MAX, shown, sizeof shown);
    struct stat st;
    if (stat(dir, &st) != 0 && errno == ENOENT && may_create) {
        /* Walk up to the nearest ancestor that exists; it must take the
         * new directories. */
        for (;;) {
            char *cut = strrchr(dir, '/');
            if (!cut || cut == dir) {
                snprintf(dir, sizeof dir, "/");
                break;
            }
            *cut = '\0';
            if (stat(dir, &st) == 0 || errno != ENOENT)
                break;
        }
        rf_spec_clean(dir, RF_PATH_MAX, shown, sizeof shown);
    }
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT)
            rf_spec_add(p, "output.path: directory %s does not exist", shown);
        else
            rf_spec_add(p, "output.path: cannot use directory %s: %s", shown, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        rf_spec_add(p, "output.path: %s is not a directory", shown);
        return;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        rf_spec_add(p, "output.path: directory %s is not writable", shown);
        return;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rf_spec_add(p, "output.path: %s is a directory, not a file",
                    rf_spec_clean(path, RF_PATH_MAX, shown, sizeof shown));
}

/* Sets s->output_path (absolute) and returns 1, or reports and returns 0. */
static int read_path(rf_spec_problems *p, const json_t *v, const rf_spec_opts *o, rf_spec *s) {
    char shown[RF_PATH_MAX + 8];
    if (!v) {
        rf_spec_add(p, "output.path: is required");
        return 0;
    }
    if (!json_is_string(v)) {
        rf_spec_add(p, "output.path: must be a string");
        return 0;
    }
    const char *path = json_string_value(v);
    if (!path[0]) {
        rf_spec_add(p, "output.path: must not be empty");
        return 0;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        rf_spec_add(p, "output.path: must name a file (got '%s')",
                    rf_spec_clean(path, 256, shown, sizeof shown));
        return 0;
    }
    int fit;
    if (path[0] == '/') {
        fit = rf_fmt(s->output_path, sizeof s->output_path, "%s", path);
    } else {
        char cwd[RF_PATH_MAX];
        const char *dir = o->base_dir;
        if (!dir || dir[0] != '/') {
            /* A relative base_dir is itself relative to the cwd. */
            if (!getcwd(cwd, sizeof cwd)) {
                rf_spec_add(
                    p, "output.path: cannot make '%s' absolute: current directory unknown (%s)",
                    rf_spec_clean(path, 256, shown, sizeof shown), strerror(errno));
                return 0;
            }
            if (dir && dir[0]) {
                size_t n = strlen(cwd);
                if (rf_fmt(cwd + n, sizeof cwd - n, "%s%s", cwd[n - 1] == '/' ? "" : "/", dir) !=
                    0) {
                    rf_spec_add(p, "output.path: base directory is longer than %d bytes",
                                RF_PATH_MAX - 1);
                    return 0;
                }
            }
            dir = cwd;
        }
        size_t dl = strlen(dir);
        fit = rf_fmt(s->output_path, sizeof s->output_path, "%s%s%s", dir,
                     dl && dir[dl - 1] == '/' ? "" : "/", path);
    }
    if (fit != 0) {
        rf_spec_add(p, "output.path: must be at most %d bytes once made absolute", RF_PATH_MAX - 1);
        return 0;
    }
    if (o->check_output_dir) {
        int before = p->count;
        check_output_dir(p, s->output_path, o->check_output_dir == 2);
        if (p->count != before)
            return 0;
    }
    return 1;
}

static int container_from_path(const char *path) {
    const char *base = strrchr(path, '/');
    const char *ext = strrchr(base ? base : path, '.');
    if (!ext)
        return -1;
    for (int i = 0; CONTAINER_NAMES[i]; i++)
        if (strcasecmp(ext + 1, CONTAINER_NAMES[i]) == 0)
            return i;
    return -1;
}

/* Which codec each container may carry, and the default (listed first). */
static const char *const CODECS_FOR[][3] = {
    [RF_CONTAINER_MP4] = {"h264", NULL, NULL},
    [RF_CONTAINER_MKV] = {"ffv1", "h264", NULL},
    [RF_CONTAINER_Y4M] = {"rawvideo", NULL, NULL},
};

void rf_spec_read_output(rf_spec_problems *p, const json_t *out, const rf_spec_opts *o,
                         rf_spec *s) {
    rf_spec_check_unknown_keys(p, out, "output.", OUTPUT_KEYS);
    const json_t *jpath = json_object_get(out, "path");
    int path_ok = read_path(p, jpath, o, s);

    const json_t *v = json_object_get(out, "container");
    int container = -1;
    if (v) {
        container = rf_spec_read_choice(p, v, "output.container", "container", CONTAINER_NAMES);
    } else if (path_ok) {
        container = container_from_path(s->output_path);
        if (container < 0) {
            char shown[RF_PATH_MAX + 8];
            rf_spec_add(
                p,
                "output.container: cannot infer from path '%s'; set output.container (mp4, mkv, "
                "y4m)",
                rf_spec_clean(json_string_value(jpath), 256, shown, sizeof shown));
        }
    }

    v = json_object_get(out, "codec");
    int codec = -1;
    if (v) {
        codec = rf_spec_read_choice(p, v, "output.codec", "codec", CODEC_NAMES);
        if (codec >= 0 && container >= 0 &&
            rf_spec_find_name(CODECS_FOR[container], CODEC_NAMES[codec]) < 0) {
            char takes[64];
            rf_spec_join(CODECS_FOR[container], takes, sizeof takes);
            rf_spec_add(p, "output.codec: %s cannot go in a %s container (%s takes: %s)",
                        CODEC_NAMES[codec], CONTAINER_NAMES[container], CONTAINER_NAMES[container],
                        takes);
        }
    } else if (container >= 0) {
        codec = rf_spec_find_name(CODEC_NAMES, CODECS_FOR[container][0]);
    }
    if (container >= 0)
        s->container = (rf_container)container;
    if (codec >= 0)
        s->codec = (rf_codec)codec;

    v = json_object_get(out, "preset");
    strcpy(s->preset, "medium");
    if (v) {
        int k = rf_spec_read_choice(p, v, "output.preset", "preset", PRESETS);
        if (k >= 0)
            strcpy(s->preset, PRESETS[k]);
    }
}

const char *rf_container_name(rf_container c) {
    return (unsigned)c < 3 ? CONTAINER_NAMES[c] : "unknown";
}

const char *rf_codec_name(rf_codec c) { return (unsigned)c < 3 ? CODEC_NAMES[c] : "unknown"; }
