/*
 * Test helpers for outbound HTTP: the scriptable fake server
 * tests/harness/fake_http.js (Node, built-in modules only) and keys and
 * certificates generated at test time with OpenSSL (nothing committed).
 *
 * Same conventions as harness.h: main thread only, every wait has a
 * timeout, failures return -1 / NULL and print why on stderr.
 */
#ifndef HX_FAKE_HTTP_H
#define HX_FAKE_HTTP_H

#include <stdbool.h>

#include <jansson.h>

/* ---- keys and certificates -------------------------------------------- */

/**
 * Generate a key pair: @type "RSA" (2048 bits) or "EC" (P-256). Stores the
 * PKCS#8 PEM private key in *@priv_pem and the SubjectPublicKeyInfo PEM
 * ("-----BEGIN PUBLIC KEY-----") in *@pub_pem (NUL-terminated, malloc'd,
 * caller frees). Either output may be NULL. Returns 0 or -1.
 */
int hx_keypair_pem(const char *type, char **priv_pem, char **pub_pem);

/**
 * Write a throwaway PKI into @dir: a self-signed CA (ca.pem) and a server
 * certificate signed by it (server.pem, key server.key) for IP 127.0.0.1
 * and DNS localhost, valid from an hour ago for a day; all keys EC P-256.
 * Stores the three paths (malloc'd, caller frees) in the outputs, which
 * may be NULL. Returns 0 or -1.
 */
int hx_tls_make_pki(const char *dir,
                    char **ca_file,
                    char **cert_file,
                    char **key_file);

/* ---- the fake server -------------------------------------------------- */

struct hx_fake_http;

struct hx_fake_http_opts {
    const char *tls_cert; /* server certificate PEM: serve HTTPS (h2 and */
    const char *tls_key;  /* http/1.1 through ALPN); both NULL: plain    */
    const char *ca_file;  /* CA of tls_cert, for the control calls       */
    const char *script;   /* {"routes": [...]} loaded at start, or NULL   */
    const char *js; /* another server with the same start protocol ("listening
                       <port>" on stdout) and /_control/ calls, e.g.
                       tests/node/fake_sts.js; NULL: fake_http.js */
    const char *const *args; /* extra arguments, NULL-terminated, or NULL */
};

/** Whether `node` is on PATH. When it is not, the test should print why
 *  and exit HX_SKIP. */
bool hx_node_available(void);

/**
 * Start `node tests/harness/fake_http.js --port 0 ...` (see the script's
 * header for routes and control endpoints) in a fresh temporary directory,
 * and wait (10 s) for its "listening <port>" line. @opts may be NULL (plain
 * HTTP, no script). Returns NULL on failure, with the server's output
 * printed. Free with hx_fake_http_free().
 */
struct hx_fake_http *hx_fake_http_start(const struct hx_fake_http_opts *opts);

/** "http://127.0.0.1:<port>" or "https://127.0.0.1:<port>", borrowed. */
const char *hx_fake_http_url(const struct hx_fake_http *f);

/** The listening port. */
int hx_fake_http_port(const struct hx_fake_http *f);

/**
 * POST @json (a route object or an array of them) to /_control/routes.
 * Returns 0, or -1 when the server rejects it (its reason is printed).
 */
int hx_fake_http_route(struct hx_fake_http *f, const char *json);

/** Like hx_fake_http_route() with a jansson value (borrowed). */
int hx_fake_http_route_json(struct hx_fake_http *f, const json_t *route);

/** Forget all routes, recorded requests and seen jtis. Returns 0 or -1. */
int hx_fake_http_reset(struct hx_fake_http *f);

/**
 * The requests the server received so far (all, or only those for @path
 * when not NULL), as the JSON array of /_control/requests (a new
 * reference, caller json_decref()s), or NULL on failure.
 */
json_t *hx_fake_http_requests(struct hx_fake_http *f, const char *path);

/** GET @path (e.g. "/_control/exchanges"): the JSON answer of a 200 (new
 *  reference), or NULL (printed). */
json_t *hx_fake_http_get(struct hx_fake_http *f, const char *path);

/** POST @json to @path: the JSON answer of a 200 (new reference), or NULL
 *  (printed). */
json_t *
hx_fake_http_post(struct hx_fake_http *f, const char *path, const char *json);

/** Kill the server, remove its directory, free @f. NULL is a no-op. */
void hx_fake_http_free(struct hx_fake_http *f);

#endif
