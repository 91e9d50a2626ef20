/* TLS trust: the system store plus HERALD_TLS_CA_FILE's extra CAs. */
#include "hr_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

/* Last: it turns banned libc functions into errors. */
#include "hr_banned.h"

struct hr_tls {
    STACK_OF(X509) * cas; /* extra trusted CAs, or NULL */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Load every certificate of the PEM file @path. */
static STACK_OF(X509) *
    ca_load(const char *path, char *errstr, size_t errstr_size)
{
    STACK_OF(X509) * cas;
    X509 *x;
    BIO *bio;

    bio = BIO_new_file(path, "r");
    if (!bio) {
        snprintf(errstr, errstr_size, "cannot open ca file '%s'", path);
        ERR_clear_error();
        return NULL;
    }
    cas = sk_X509_new_null();
    if (!cas) {
        BIO_free(bio);
        snprintf(errstr, errstr_size,
                 "cannot load ca file '%s': out of "
                 "memory",
                 path);
        return NULL;
    }
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (!sk_X509_push(cas, x)) {
            X509_free(x);
            break;
        }
    }
    /* The loop ends with a "no start line" error at end of file. */
    ERR_clear_error();
    BIO_free(bio);
    if (sk_X509_num(cas) == 0) {
        sk_X509_free(cas);
        snprintf(errstr, errstr_size, "ca file '%s' holds no PEM certificate",
                 path);
        return NULL;
    }
    return cas;
}

/*
 * CURLOPT_SSL_CTX_FUNCTION: curl has loaded its default CA store into the
 * context by the time this runs; add the extra CAs to it. A certificate
 * that is already there (the store may be curl's cached one, shared by the
 * connections of this multi handle) is not an error.
 */
static CURLcode ssl_ctx_add_cas(CURL *easy, void *ssl_ctx, void *userptr)
{
    const struct hr_tls *tls = userptr;
    X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);

    (void)easy;
    if (!store)
        return CURLE_SSL_CACERT_BADFILE;
    for (int i = 0; i < sk_X509_num(tls->cas); i++)
        X509_STORE_add_cert(store, sk_X509_value(tls->cas, i));
    ERR_clear_error();
    return CURLE_OK;
}

struct hr_tls *hr_tls_new(const char *ca_file, char *errstr, size_t errstr_size)
{
    const curl_version_info_data *info;
    struct hr_tls *tls;

    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK) {
        snprintf(errstr, errstr_size, "cannot initialize libcurl: %s",
                 curl_easy_strerror(curl_init_result));
        return NULL;
    }
    info = curl_version_info(CURLVERSION_NOW);
    if (!(info->features & CURL_VERSION_SSL)) {
        snprintf(errstr, errstr_size, "libcurl %s lacks TLS support",
                 info->version);
        return NULL;
    }
    /* The extra CAs are added through OpenSSL's SSL_CTX. */
    if (ca_file && (!info->ssl_version ||
                    strncmp(info->ssl_version, "OpenSSL/", 8) != 0)) {
        snprintf(errstr, errstr_size,
                 "libcurl's TLS backend '%s' cannot take extra CAs",
                 info->ssl_version ? info->ssl_version : "none");
        return NULL;
    }
    tls = calloc(1, sizeof(*tls));
    if (!tls) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (ca_file && !(tls->cas = ca_load(ca_file, errstr, errstr_size))) {
        free(tls);
        return NULL;
    }
    return tls;
}

CURLcode hr_tls_apply(const struct hr_tls *tls, CURL *easy)
{
    CURLcode res;

    if ((res = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L)) ||
        (res = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L)))
        return res;
    if (!tls || !tls->cas)
        return CURLE_OK;
    if ((res =
             curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_add_cas)))
        return res;
    return curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, tls);
}

void hr_tls_free(struct hr_tls *tls)
{
    if (!tls)
        return;
    if (tls->cas)
        sk_X509_pop_free(tls->cas, X509_free);
    free(tls);
}

const char *hr_tls_error(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();

    if (!e)
        snprintf(buf, size, "unknown error");
    else
        ERR_error_string_n(e, buf, size);
    ERR_clear_error();
    return buf;
}
