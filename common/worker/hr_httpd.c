/*
 * Health state and the operational HTTP server. libmicrohttpd runs its own
 * polling thread; the only state it shares with the worker is the metrics
 * registry (its own mutex) and the health state below (a mutex for the
 * readiness reason, an atomic for the last beat).
 */
#include "hr_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "hr_banned.h"
#include "hr_compat.h"
#include "hr_log.h"
#include "hr_metrics.h"
#include "hr_time.h"

#define HR_HTTPD_ALIVE_MS       30000
#define HR_HTTPD_REASON_MAX     256
#define HR_HTTPD_CONN_LIMIT     64
#define HR_HTTPD_CONN_TIMEOUT_S 10

#define HR_HTTPD_CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define HR_HTTPD_CT_TEXT    "text/plain; charset=utf-8"

/* INT64_MIN means "never beat": the first liveness check starts the clock,
 * so a process is alive from the moment anyone asks. */
static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;
static bool health_ready;
static char health_reason[HR_HTTPD_REASON_MAX] = "starting";
static _Atomic int64_t health_beat_ms = INT64_MIN;

struct hr_httpd {
    struct MHD_Daemon *daemon;
    struct hr_metrics *reg;
    int port;
};

void hr_health_set_ready(const char *reason)
{
    pthread_mutex_lock(&health_lock);
    health_ready = reason == NULL;
    snprintf(health_reason, sizeof(health_reason), "%s", reason ? reason : "");
    pthread_mutex_unlock(&health_lock);
}

bool hr_health_is_ready(char *reason, size_t reason_size)
{
    bool ready;

    pthread_mutex_lock(&health_lock);
    ready = health_ready;
    if (!ready && reason && reason_size > 0)
        snprintf(reason, reason_size, "%s", health_reason);
    pthread_mutex_unlock(&health_lock);
    return ready;
}

void hr_health_beat(void)
{
    atomic_store_explicit(&health_beat_ms, hr_time_mono_ms(),
                          memory_order_relaxed);
}

bool hr_health_is_alive(long max_age_ms)
{
    int64_t now = hr_time_mono_ms();
    int64_t beat = atomic_load_explicit(&health_beat_ms, memory_order_relaxed);

    if (beat == INT64_MIN) {
        /* First use: start the clock now, unless a beat raced us. */
        if (atomic_compare_exchange_strong(&health_beat_ms, &beat, now))
            beat = now;
    }
    return now - beat <= (int64_t)max_age_ms;
}

/* libmicrohttpd's error log, routed into ours as one line per message. */
HR_PRINTF(2, 0)
static void httpd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512];
    size_t len;
    int saved_errno = errno; /* MHD_start_daemon() callers read it after */

    (void)cls;
    vsnprintf(text, sizeof(text), fmt, ap);
    len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    hr_log_warn("httpd error", HR_LOG_STR("err", text));
    errno = saved_errno;
}

/* Queue @body (malloc'd; taken on every path) with @status and @type. */
static enum MHD_Result respond(struct MHD_Connection *conn,
                               unsigned int status,
                               const char *type,
                               char *body,
                               size_t len)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
respond_text(struct MHD_Connection *conn, unsigned int status, const char *text)
{
    size_t len = strlen(text);
    char *body = malloc(len + 1);

    if (!body)
        return MHD_NO;
    memcpy(body, text, len + 1);
    return respond(conn, status, HR_HTTPD_CT_TEXT, body, len);
}

static enum MHD_Result serve_metrics(struct hr_httpd *httpd,
                                     struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text = hr_metrics_render(httpd->reg, &len);

    if (!text)
        return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "cannot render metrics\n");
    return respond(conn, MHD_HTTP_OK, HR_HTTPD_CT_METRICS, text, len);
}

static enum MHD_Result serve_readyz(struct MHD_Connection *conn)
{
    char reason[HR_HTTPD_REASON_MAX];
    char body[HR_HTTPD_REASON_MAX + 32];

    if (hr_health_is_ready(reason, sizeof(reason)))
        return respond_text(conn, MHD_HTTP_OK, "ready\n");
    snprintf(body, sizeof(body), "not ready: %s\n", reason);
    return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result serve_healthz(struct MHD_Connection *conn)
{
    if (hr_health_is_alive(HR_HTTPD_ALIVE_MS))
        return respond_text(conn, MHD_HTTP_OK, "ok\n");
    return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "stalled\n");
}

static enum MHD_Result httpd_handle(void *cls,
                                    struct MHD_Connection *conn,
                                    const char *url,
                                    const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size,
                                    void **con_cls)
{
    struct hr_httpd *httpd = cls;

    (void)version;
    (void)upload_data;
    (void)con_cls;
    /* Answer on the first call: a request body, if any, is never read. */
    *upload_data_size = 0;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "method not allowed\n");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(httpd, conn);
    if (strcmp(url, "/healthz") == 0)
        return serve_healthz(conn);
    if (strcmp(url, "/readyz") == 0)
        return serve_readyz(conn);
    return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/*
 * Resolve "host:port", ":port" (all IPv4 interfaces) or "[v6]:port" into
 * @ss. Numeric addresses are the norm; a host name is resolved once here.
 */
static int parse_addr(const char *addr,
                      struct sockaddr_storage *ss,
                      char *errstr,
                      size_t errstr_size)
{
    char host[256];
    const char *colon, *port, *hstart = addr;
    size_t hlen;
    char *end;
    long num;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');

        if (!close || close[1] != ':') {
            snprintf(errstr, errstr_size,
                     "cannot parse listen address '%s': expected [host]:port",
                     addr);
            return -1;
        }
        hstart = addr + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) {
            snprintf(errstr, errstr_size,
                     "cannot parse listen address '%s': expected host:port",
                     addr);
            return -1;
        }
        hlen = (size_t)(colon - addr);
    }
    port = colon + 1;
    errno = 0;
    num = strtol(port, &end, 10);
    if (!*port || *end || errno || num < 0 || num > 65535 || port[0] == '-' ||
        port[0] == '+' || port[0] == ' ') {
        snprintf(errstr, errstr_size,
                 "cannot parse listen address '%s': bad port '%s'", addr, port);
        return -1;
    }
    if (hlen >= sizeof(host)) {
        snprintf(errstr, errstr_size,
                 "cannot parse listen address '%s': host too long", addr);
        return -1;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = hlen ? AF_UNSPEC : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(hlen ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(errstr, errstr_size, "cannot resolve listen address '%s': %s",
                 addr, gai_strerror(rc));
        return -1;
    }
    if (res->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        snprintf(errstr, errstr_size,
                 "cannot resolve listen address '%s': address too long", addr);
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

struct hr_httpd *hr_httpd_start(const char *addr,
                                struct hr_metrics *reg,
                                char *errstr,
                                size_t errstr_size)
{
    struct sockaddr_storage ss;
    struct hr_httpd *httpd;
    const union MHD_DaemonInfo *info;
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

    if (parse_addr(addr, &ss, errstr, errstr_size) != 0)
        return NULL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    httpd = calloc(1, sizeof(*httpd));
    if (!httpd) {
        snprintf(errstr, errstr_size, "cannot start http server on '%s': %s",
                 addr, strerror(ENOMEM));
        return NULL;
    }
    httpd->reg = reg;
    errno = 0;
    /* The logger goes first so that MHD reports option errors through it.
     * The port argument is ignored with MHD_OPTION_SOCK_ADDR but appears in
     * MHD's own error messages. */
    httpd->daemon = MHD_start_daemon(
        flags, sockaddr_port(&ss), NULL, NULL, httpd_handle, httpd,
        MHD_OPTION_EXTERNAL_LOGGER, (MHD_LogCallback)httpd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)HR_HTTPD_CONN_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)HR_HTTPD_CONN_TIMEOUT_S,
        MHD_OPTION_END);
    if (!httpd->daemon) {
        snprintf(errstr, errstr_size, "cannot start http server on '%s': %s",
                 addr, errno ? strerror(errno) : "libmicrohttpd failed");
        free(httpd);
        return NULL;
    }
    info = MHD_get_daemon_info(httpd->daemon, MHD_DAEMON_INFO_BIND_PORT);
    httpd->port = info ? info->port : 0;
    return httpd;
}

int hr_httpd_port(const struct hr_httpd *httpd)
{
    return httpd ? httpd->port : 0;
}

void hr_httpd_stop(struct hr_httpd *httpd)
{
    if (!httpd)
        return;
    MHD_stop_daemon(httpd->daemon);
    free(httpd);
}
