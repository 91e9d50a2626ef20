/* HTTP GET through libcurl and free loopback ports. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"
#include "hr_banned.h"

#define HX_HTTP_TIMEOUT_MS 5000L

struct body_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
};

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_buf *buf = userdata;
    size_t n = size * nmemb;

    if (buf->len + n + 1 > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 4096;
        char *grown;

        while (cap < buf->len + n + 1)
            cap *= 2;
        grown = realloc(buf->data, cap);
        if (!grown) {
            buf->oom = true;
            return 0; /* makes curl fail the transfer */
        }
        buf->data = grown;
        buf->cap = cap;
    }
    memcpy(buf->data + buf->len, ptr, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
    return n;
}

static int http_get(const char *url, long *status, char **body, bool quiet)
{
    static bool curl_ready;
    struct body_buf buf = {0};
    CURLcode result;
    CURL *curl;

    if (body)
        *body = NULL;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
            fprintf(stderr, "hx: curl_global_init failed\n");
            return -1;
        }
        curl_ready = true;
    }
    curl = curl_easy_init();
    if (!curl)
        return -1;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, HX_HTTP_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    result = curl_easy_perform(curl);
    if (result != CURLE_OK) {
        if (!quiet)
            fprintf(stderr, "hx: GET %s: %s\n", url,
                    curl_easy_strerror(result));
        curl_easy_cleanup(curl);
        free(buf.data);
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(curl);
    if (body) {
        if (!buf.data)
            buf.data = calloc(1, 1);
        *body = buf.data;
    } else {
        free(buf.data);
    }
    return 0;
}

int hx_http_get(const char *url, long *status, char **body)
{
    return http_get(url, status, body, false);
}

int hx_http_probe(const char *url, long *status)
{
    return http_get(url, status, NULL, true);
}

int hx_free_port(void)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int fd, port = -1;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "hx: socket: %s\n", strerror(errno));
        return -1;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) ||
        getsockname(fd, (struct sockaddr *)&addr, &len))
        fprintf(stderr, "hx: cannot find a free port: %s\n", strerror(errno));
    else
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

char *hx_metrics_get(int port)
{
    char url[64], *body = NULL;
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    if (hx_http_get(url, &status, &body) || status != 200) {
        free(body);
        return NULL;
    }
    return body;
}

double hx_metric_sum(const char *text, const char *prefix)
{
    size_t plen = strlen(prefix);
    double sum = 0;

    if (!text)
        return -1;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);

        if (len > plen && !strncmp(line, prefix, plen)) {
            const char *sp = line + len;

            while (sp > line && sp[-1] != ' ')
                sp--;
            sum += strtod(sp, NULL);
        }
        line += len + (end ? 1 : 0);
    }
    return sum;
}

double hx_metric(int port, const char *prefix)
{
    char *text = hx_metrics_get(port);
    double sum = hx_metric_sum(text, prefix);

    free(text);
    return sum;
}
