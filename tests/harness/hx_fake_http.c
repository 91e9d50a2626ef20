/* The fake HTTP server (fake_http.js) and test-time keys and certificates. */
#include "hx_fake_http.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "harness.h"
#include "hr_arena.h"

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

#define HX_FAKE_HTTP_START_MS 30000
#define HX_FAKE_HTTP_CALL_MS  5000L

struct hx_fake_http {
    char *dir;
    char *out_path;
    char *err_path;
    char *ca_file; /* for control calls over TLS, or NULL */
    char url[64];
    int port;
    struct hx_proc *proc;
};

static void print_ossl_error(const char *what)
{
    char buf[256];

    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    ERR_clear_error();
    fprintf(stderr, "hx: %s: %s\n", what, buf);
}

static char *path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);

    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

/* ---- keys and certificates -------------------------------------------- */

/* The contents of a memory BIO as a NUL-terminated malloc'd string. */
static char *bio_take(BIO *bio)
{
    char *data, *s;
    long len = BIO_get_mem_data(bio, &data);

    if (len < 0)
        return NULL;
    s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    memcpy(s, data, (size_t)len);
    s[len] = '\0';
    return s;
}

static EVP_PKEY *keygen(const char *type)
{
    EVP_PKEY *key = NULL;

    if (!strcmp(type, "RSA"))
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else if (!strcmp(type, "EC"))
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    else
        fprintf(stderr, "hx: unknown key type '%s'\n", type);
    if (!key)
        print_ossl_error("cannot generate a key");
    return key;
}

int hx_keypair_pem(const char *type, char **priv_pem, char **pub_pem)
{
    EVP_PKEY *key = keygen(type);
    BIO *priv = NULL, *pub = NULL;
    int rc = -1;

    if (priv_pem)
        *priv_pem = NULL;
    if (pub_pem)
        *pub_pem = NULL;
    if (!key)
        return -1;
    priv = BIO_new(BIO_s_mem());
    pub = BIO_new(BIO_s_mem());
    if (!priv || !pub ||
        !PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_PUBKEY(pub, key)) {
        print_ossl_error("cannot write a PEM key");
        goto out_free;
    }
    if (priv_pem && !(*priv_pem = bio_take(priv)))
        goto out_free;
    if (pub_pem && !(*pub_pem = bio_take(pub))) {
        if (priv_pem) {
            free(*priv_pem);
            *priv_pem = NULL;
        }
        goto out_free;
    }
    rc = 0;
out_free:
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
    return rc;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok;

    if (!ext) {
        print_ossl_error("cannot make a certificate extension");
        return -1;
    }
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/*
 * A certificate for @key named @cn, issued by @issuer / @issuer_key, or
 * self-signed (a CA) when @issuer is NULL.
 */
static X509 *make_cert(EVP_PKEY *key,
                       const char *cn,
                       X509 *issuer,
                       EVP_PKEY *issuer_key,
                       long serial)
{
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX ctx;
    bool ca = !issuer;

    if (!x)
        return NULL;
    name = X509_get_subject_name(x);
    if (!X509_set_version(x, 2) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
        !X509_set_pubkey(x, key) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_issuer_name(x, ca ? name : X509_get_subject_name(issuer)))
        goto out_err;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, ca ? x : issuer, x, NULL, NULL, 0);
    if (add_ext(x, &ctx, NID_basic_constraints,
                ca ? "critical,CA:TRUE" : "critical,CA:FALSE") ||
        add_ext(x, &ctx, NID_key_usage,
                ca ? "critical,keyCertSign,cRLSign"
                   : "critical,digitalSignature") ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
        goto out_err;
    if (!ca &&
        (add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ||
         add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") ||
         add_ext(x, &ctx, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost")))
        goto out_err;
    if (!X509_sign(x, ca ? key : issuer_key, EVP_sha256()))
        goto out_err;
    return x;

out_err:
    print_ossl_error("cannot make a certificate");
    X509_free(x);
    return NULL;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");
    int ok;

    if (!fp) {
        perror(path);
        return -1;
    }
    ok = cert ? PEM_write_X509(fp, cert)
              : PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(fp) || !ok) {
        fprintf(stderr, "hx: cannot write '%s'\n", path);
        return -1;
    }
    return 0;
}

int hx_tls_make_pki(const char *dir,
                    char **ca_file,
                    char **cert_file,
                    char **key_file)
{
    EVP_PKEY *ca_key = keygen("EC"), *srv_key = keygen("EC");
    X509 *ca = NULL, *srv = NULL;
    char *ca_path = path_join(dir, "ca.pem");
    char *cert_path = path_join(dir, "server.pem");
    char *key_path = path_join(dir, "server.key");
    int rc = -1;

    if (!ca_key || !srv_key || !ca_path || !cert_path || !key_path)
        goto out_free;
    ca = make_cert(ca_key, "herald test ca", NULL, NULL, 1);
    if (!ca)
        goto out_free;
    srv = make_cert(srv_key, "127.0.0.1", ca, ca_key, 2);
    if (!srv)
        goto out_free;
    if (write_pem(ca_path, ca, NULL) || write_pem(cert_path, srv, NULL) ||
        write_pem(key_path, NULL, srv_key))
        goto out_free;
    rc = 0;
    if (ca_file) {
        *ca_file = ca_path;
        ca_path = NULL;
    }
    if (cert_file) {
        *cert_file = cert_path;
        cert_path = NULL;
    }
    if (key_file) {
        *key_file = key_path;
        key_path = NULL;
    }
out_free:
    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    free(ca_path);
    free(cert_path);
    free(key_path);
    return rc;
}

/* ---- the fake server -------------------------------------------------- */

bool hx_node_available(void)
{
    return hx_on_path("node");
}

static void print_output(const struct hx_fake_http *f)
{
    char *out = hx_file_read(f->out_path, NULL);
    char *err = hx_file_read(f->err_path, NULL);

    fprintf(stderr,
            "hx: --- fake_http stdout ---\n%s\nhx: --- stderr ---\n%s\n",
            out ? out : "", err ? err : "");
    free(out);
    free(err);
}

/* The port from a "listening <port>" line in stdout, or 0. */
static int read_port(const struct hx_fake_http *f)
{
    char *out = hx_file_read(f->out_path, NULL);
    const char *line;
    int port = 0;

    if (out && (line = strstr(out, "listening ")) && strchr(line, '\n'))
        port = (int)strtol(line + strlen("listening "), NULL, 10);
    free(out);
    return port;
}

struct hx_fake_http *hx_fake_http_start(const struct hx_fake_http_opts *opts)
{
    static const struct hx_fake_http_opts none = {0};
    const char *argv[32];
    struct hx_fake_http *f;
    int64_t deadline;
    size_t n = 0;

    if (!opts)
        opts = &none;
    if (!hx_node_available()) {
        fprintf(stderr, "hx: node is not on PATH\n");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "hx: curl_global_init failed\n");
        return NULL;
    }
    f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->dir = hx_tmpdir_new("fakehttp");
    if (!f->dir)
        goto out_free;
    f->out_path = path_join(f->dir, "stdout.log");
    f->err_path = path_join(f->dir, "stderr.log");
    if (!f->out_path || !f->err_path)
        goto out_free;
    if (opts->ca_file && !(f->ca_file = strdup(opts->ca_file)))
        goto out_free;

    argv[n++] = "node";
    argv[n++] =
        opts->js ? opts->js : HX_SOURCE_DIR "/tests/harness/fake_http.js";
    argv[n++] = "--port";
    argv[n++] = "0";
    if (opts->tls_cert) {
        argv[n++] = "--tls";
        argv[n++] = "--cert";
        argv[n++] = opts->tls_cert;
        argv[n++] = "--key";
        argv[n++] = opts->tls_key;
    }
    if (opts->script) {
        argv[n++] = "--script";
        argv[n++] = opts->script;
    }
    for (size_t i = 0; opts->args && opts->args[i] && n < 30; i++)
        argv[n++] = opts->args[i];
    argv[n] = NULL;
    f->proc = hx_proc_spawn(argv, NULL, f->out_path, f->err_path);
    if (!f->proc)
        goto out_free;

    deadline = hx_now_ms() + HX_FAKE_HTTP_START_MS;
    while (!(f->port = read_port(f))) {
        if (!hx_proc_is_running(f->proc)) {
            fprintf(stderr, "hx: fake_http exited at start\n");
            print_output(f);
            goto out_free;
        }
        if (hx_now_ms() >= deadline) {
            fprintf(stderr, "hx: fake_http did not start in %d ms\n",
                    HX_FAKE_HTTP_START_MS);
            print_output(f);
            goto out_free;
        }
        hx_sleep_ms(20);
    }
    snprintf(f->url, sizeof(f->url), "%s://127.0.0.1:%d",
             opts->tls_cert ? "https" : "http", f->port);
    return f;

out_free:
    hx_fake_http_free(f);
    return NULL;
}

const char *hx_fake_http_url(const struct hx_fake_http *f)
{
    return f->url;
}

int hx_fake_http_port(const struct hx_fake_http *f)
{
    return f->port;
}

struct resp_buf {
    char *data;
    size_t len;
};

static size_t resp_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct resp_buf *buf = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(buf->data, buf->len + n + 1);

    if (!grown)
        return 0;
    memcpy(grown + buf->len, ptr, n);
    buf->data = grown;
    buf->len += n;
    buf->data[buf->len] = '\0';
    return n;
}

/*
 * One control call: @method @path with @body (NULL: none). Returns the
 * parsed JSON answer of a 200 (new reference), or NULL (printed).
 */
static json_t *control(struct hx_fake_http *f,
                       const char *method,
                       const char *path,
                       const char *body)
{
    struct resp_buf buf = {0};
    struct curl_slist *hdrs = NULL;
    char url[512];
    json_error_t jerr;
    json_t *answer = NULL;
    long status = 0;
    CURLcode res;
    CURL *curl;

    curl = curl_easy_init();
    if (!curl)
        return NULL;
    snprintf(url, sizeof(url), "%s%s", f->url, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, HX_FAKE_HTTP_CALL_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, resp_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    if (f->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, f->ca_file);
    if (body) {
        hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    }
    if (strcmp(method, body ? "POST" : "GET"))
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    res = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (res != CURLE_OK) {
        fprintf(stderr, "hx: fake_http %s %s: %s\n", method, path,
                curl_easy_strerror(res));
    } else if (status != 200) {
        fprintf(stderr, "hx: fake_http %s %s: %ld %s\n", method, path, status,
                buf.data ? buf.data : "");
    } else if (!(answer =
                     json_loadb(buf.data ? buf.data : "", buf.len, 0, &jerr))) {
        fprintf(stderr, "hx: fake_http %s %s: bad json: %s\n", method, path,
                jerr.text);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    free(buf.data);
    return answer;
}

int hx_fake_http_route(struct hx_fake_http *f, const char *json)
{
    json_t *answer = control(f, "POST", "/_control/routes", json);

    json_decref(answer);
    return answer ? 0 : -1;
}

int hx_fake_http_route_json(struct hx_fake_http *f, const json_t *route)
{
    char *s = hr_arena_json_dumps(route, JSON_COMPACT);
    int rc;

    if (!s)
        return -1;
    rc = hx_fake_http_route(f, s);
    free(s);
    return rc;
}

int hx_fake_http_reset(struct hx_fake_http *f)
{
    json_t *answer = control(f, "POST", "/_control/reset", "{}");

    json_decref(answer);
    return answer ? 0 : -1;
}

json_t *hx_fake_http_requests(struct hx_fake_http *f, const char *path)
{
    char query[512] = "/_control/requests";
    json_t *answer;

    if (path) {
        char *esc = curl_easy_escape(NULL, path, 0);

        if (!esc)
            return NULL;
        snprintf(query, sizeof(query), "/_control/requests?path=%s", esc);
        curl_free(esc);
    }
    answer = control(f, "GET", query, NULL);
    if (answer && !json_is_array(answer)) {
        fprintf(stderr, "hx: fake_http requests: not an array\n");
        json_decref(answer);
        return NULL;
    }
    return answer;
}

void hx_fake_http_free(struct hx_fake_http *f)
{
    if (!f)
        return;
    hx_proc_free(f->proc);
    hx_tmpdir_done(f->dir);
    free(f->out_path);
    free(f->err_path);
    free(f->ca_file);
    free(f);
}

json_t *hx_fake_http_get(struct hx_fake_http *f, const char *path)
{
    return control(f, "GET", path, NULL);
}

json_t *
hx_fake_http_post(struct hx_fake_http *f, const char *path, const char *json)
{
    return control(f, "POST", path, json);
}
