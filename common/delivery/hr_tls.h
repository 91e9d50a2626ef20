/*
 * Outbound TLS trust for every libcurl client (webhooks, providers, AWS):
 * the system store plus the extra CAs of HERALD_TLS_CA_FILE (added to the
 * store, which stays trusted, unlike CURLOPT_CAINFO, which would replace
 * it), with peer and host verification always on.
 */
#ifndef HR_TLS_H
#define HR_TLS_H

#include <stddef.h>

#include <curl/curl.h>

struct hr_tls;

/**
 * Initialize libcurl for the process (once; thread-safe) and load the PEM
 * bundle @ca_file (NULL: none). The file is read once, here. Returns NULL
 * with @errstr on failure (libcurl without TLS, or whose TLS backend is not
 * OpenSSL while a CA file is given; an unreadable file or one without a
 * certificate; out of memory).
 */
struct hr_tls *
hr_tls_new(const char *ca_file, char *errstr, size_t errstr_size);

/** Set @easy's TLS options: verification on, the extra CAs when any.
 *  @tls must outlive the transfer. */
CURLcode hr_tls_apply(const struct hr_tls *tls, CURL *easy);

/** Free @tls. NULL is a no-op. */
void hr_tls_free(struct hr_tls *tls);

/**
 * The first error of this thread's OpenSSL error queue, for messages, in
 * @buf ("unknown error" when the queue is empty); clears the queue so that
 * errors do not leak into later calls. Returns @buf.
 */
const char *hr_tls_error(char *buf, size_t size);

#endif
