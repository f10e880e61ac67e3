/* http — the daemon (libmicrohttpd, one internal thread), routing,
 * authorisation and the dashboard's static files. See http.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "http_internal.h"
#include "rf_util.h"

#define LOG "http"
#define MAX_BODY (4u << 20) /* a batch of specs fits; a runaway upload does not */
#define CONNECTION_LIMIT 128
#define CONNECTION_TIMEOUT_S 30

/* What a request accumulates while its body arrives. */
typedef struct conn_ctx {
    char *body;
    size_t len, cap;
    int too_big;
} conn_ctx;

const char *http_arg(const http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void http_json(http_resp *out, unsigned status, json_t *v) {
    out->status = status;
    out->type = "application/json";
    out->body = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(v);
    if (!out->body) {
        out->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        out->type = "text/plain";
        out->body = strdup("cannot build the reply (out of memory?)\n");
    }
    out->len = out->body ? strlen(out->body) : 0;
}

void http_error(http_resp *out, unsigned status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* json_string refuses bytes that are not UTF-8; such a message still
     * reaches the caller, its odd bytes as '?'. */
    json_t *s = json_string(msg);
    for (char *p = msg; !s && *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    http_json(out, status, json_pack("{s:o}", "error", s ? s : json_string(msg)));
}

/* Equal strings, in a time that does not depend on where they differ. */
static int token_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

static int authorised(const http_server *h, const http_req *r) {
    if (!h->token[0])
        return 1;
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    static const char bearer[] = "Bearer ";
    if (!auth || strncmp(auth, bearer, sizeof bearer - 1) != 0)
        return 0;
    return token_equal(auth + sizeof bearer - 1, h->token);
}

static void serve_file(const char *path, const char *type, http_resp *out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        http_error(out, MHD_HTTP_NOT_FOUND, "%s: not available on the coordinator (%s)", path,
                   fd < 0 ? strerror(errno) : "not a file");
        return;
    }
    out->status = MHD_HTTP_OK;
    out->type = type;
    out->fd = fd;
    out->fd_size = (uint64_t)st.st_size;
}

static void route(http_server *h, const http_req *r, http_resp *out) {
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (strcmp(r->path, "/api") == 0 || strncmp(r->path, "/api/", 5) == 0) {
        if (!get && !authorised(h, r)) {
            http_error(out, MHD_HTTP_UNAUTHORIZED,
                       "authorization: this coordinator needs 'Authorization: Bearer <token>' "
                       "to change anything");
            return;
        }
        http_api(h, r, r->path + 4, out);
        return;
    }
    if (!get) {
        http_error(out, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s: only GET is served here", r->method,
                   r->path);
        return;
    }
    if (strcmp(r->path, "/metrics") == 0) {
        http_prometheus(h, out);
        return;
    }
    if (strcmp(r->path, "/static/chart.min.js") == 0) {
        serve_file(h->chart_js, "text/javascript", out);
        return;
    }
    for (size_t i = 0; i < http_nassets; i++)
        if (strcmp(r->path, http_assets[i].path) == 0) {
            out->status = MHD_HTTP_OK;
            out->type = http_assets[i].type;
            out->body = malloc(http_assets[i].len + 1);
            if (!out->body) {
                out->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                return;
            }
            memcpy(out->body, http_assets[i].data, http_assets[i].len);
            out->len = http_assets[i].len;
            return;
        }
    http_error(out, MHD_HTTP_NOT_FOUND, "%s: no such page", r->path);
}

static enum MHD_Result respond(struct MHD_Connection *conn, http_resp *o) {
    struct MHD_Response *resp;
    if (o->fd >= 0)
        resp = MHD_create_response_from_fd(o->fd_size, o->fd);
    else
        resp = MHD_create_response_from_buffer_with_free_callback(o->len, o->body, free);
    if (!resp) {
        if (o->fd >= 0)
            close(o->fd);
        free(o->body);
        return MHD_NO;
    }
    if (o->type)
        MHD_add_response_header(resp, "Content-Type", o->type);
    /* The dashboard polls: never serve it yesterday's figures. */
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (o->status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(conn, o->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    http_server *h = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        if (!(cc = calloc(1, sizeof *cc)))
            return MHD_NO;
        *con_cls = cc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cc->len + *upload_size > MAX_BODY) {
            cc->too_big = 1;
        } else if (!cc->too_big) {
            if (cc->len + *upload_size + 1 > cc->cap) {
                size_t cap = (cc->len + *upload_size + 1) * 2;
                char *b = realloc(cc->body, cap);
                if (!b)
                    return MHD_NO;
                cc->body = b;
                cc->cap = cap;
            }
            memcpy(cc->body + cc->len, upload_data, *upload_size);
            cc->len += *upload_size;
            cc->body[cc->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    http_resp out = {.status = MHD_HTTP_OK, .fd = -1};
    if (cc->too_big) {
        http_error(&out, MHD_HTTP_CONTENT_TOO_LARGE, "body: larger than %u bytes", MAX_BODY);
    } else {
        http_req r = {.conn = conn, .method = method, .path = url,
                      .body = cc->body ? cc->body : "", .body_len = cc->len};
        route(h, &r, &out);
    }
    if (out.status >= 400)
        rf_debug(LOG, "request refused method=%s path=%s status=%u", method, url, out.status);
    return respond(conn, &out);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx *cc = *con_cls;
    if (cc) {
        free(cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    rf_warn(LOG, "libmicrohttpd: %s", msg);
}

/* "host:port" (host may be [v6]) into a socket address. */
static int resolve(const char *bind, struct sockaddr_storage *sa, socklen_t *salen, int *v6,
                   char *err, size_t errlen) {
    char host[256];
    const char *colon = strrchr(bind, ':');
    if (!colon || colon == bind || !colon[1]) {
        snprintf(err, errlen, "http: '%s' is not host:port", bind);
        return -1;
    }
    size_t hl = (size_t)(colon - bind);
    if (hl >= sizeof host) {
        snprintf(err, errlen, "http: host in '%s' too long", bind);
        return -1;
    }
    memcpy(host, bind, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535) {
        snprintf(err, errlen, "http: port in '%s' must be a number from 0 to 65535", bind);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "http: cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *salen = ai->ai_addrlen;
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return 0;
}

int http_new(const http_opts *o, http_server **out, char *err, size_t errlen) {
    *out = NULL;
    http_server *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "http: out of memory");
        return -1;
    }
    h->zctx = o->zctx;
    snprintf(h->client_ep, sizeof h->client_ep, "%s", o->client_ep);
    snprintf(h->token, sizeof h->token, "%s", o->token ? o->token : "");
    snprintf(h->chart_js, sizeof h->chart_js, "%s", o->chart_js ? o->chart_js : "");
    store_opts so = {.addr = o->redis, .prefix = o->prefix};
    if (store_new(&so, &h->st, err, errlen) != 0)
        goto fail;
    struct sockaddr_storage sa;
    socklen_t salen;
    int v6;
    if (resolve(o->bind, &sa, &salen, &v6, err, errlen) != 0)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    /* The logger first, so that every later complaint goes through it. */
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                            mhd_log, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "http: cannot listen on %s (in use, or not an address of this "
                 "host?)", o->bind);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    *out = h;
    return 0;
fail:
    http_free(h);
    return -1;
}

unsigned http_port(const http_server *h) {
    return h->port;
}

void http_free(http_server *h) {
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d); /* joins its thread: the socket below is ours again */
    if (h->req)
        zmq_close(h->req);
    store_free(h->st);
    free(h);
}
