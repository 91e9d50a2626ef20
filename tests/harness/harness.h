/*
 * Test harness for integration tests and benchmarks: temporary directories,
 * child processes, a real redis-server, herald-devbroker, Kafka helpers,
 * HTTP and waiting. Prefix hx_.
 *
 * Not thread-safe: call from the test's main thread. Every wait has a
 * timeout. Functions return 0 / -1 (or NULL) and print the reason on stderr,
 * so a test can simply assert_int_equal(hx_...(), 0).
 *
 * HX_BIN_DIR (where herald binaries land) and HX_SOURCE_DIR (the source
 * tree) are compile definitions set by tests/CMakeLists.txt.
 */
#ifndef HX_HARNESS_H
#define HX_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

/* Exit status that makes CTest report a test as skipped (SKIP_RETURN_CODE). */
#define HX_SKIP 77

/* ---- paths ------------------------------------------------------------ */

/**
 * Create a fresh private directory "$TMPDIR/herald-<tag>-XXXXXX" (or under
 * /tmp). Returns the path, owned by the caller (free() it), or NULL.
 */
char *hx_tmpdir_new(const char *tag);

/** Remove @dir and everything below it (symlinks are not followed). NULL
 *  is a no-op. Errors are printed, not returned. */
void hx_tmpdir_remove(const char *dir);

/** The end of a test's @dir (from hx_tmpdir_new()): kept, and its path
 *  printed, when HERALD_TEST_KEEP is set; removed otherwise; then freed.
 *  NULL is a no-op. */
void hx_tmpdir_done(char *dir);

/**
 * HX_BIN_DIR "/" @name, e.g. hx_bin("herald-devbroker"). The result lives in
 * one of 16 rotating static buffers: it stays valid for the next 15 calls
 * of hx_bin() / hx_fixture_path(), long enough to build an argv; strdup()
 * it to keep it longer.
 */
const char *hx_bin(const char *name);

/**
 * $HERALD_TEST_FIXTURES "/" @rel, or HX_SOURCE_DIR "/tests/fixtures/" @rel
 * when that is unset. Same rotating buffers and lifetime as hx_bin().
 */
const char *hx_fixture_path(const char *rel);

/**
 * Read the whole file @path into a NUL-terminated malloc'd buffer (caller
 * frees) and its length into *@len when @len is not NULL. NULL on failure
 * (errno set, nothing printed: a missing file is often expected).
 */
char *hx_file_read(const char *path, size_t *len);

/* ---- sample folders ------------------------------------------------------ */

/**
 * One sample of a fixture folder: <name>.json, the record value (or an
 * empty <name>.null: the value is null, a tombstone), with the optional
 * <name>.key (the record key, as bytes), <name>.headers.json (an object of
 * strings) and the required <name>.expected.json.
 */
struct hx_sample {
    char name[128];
    bool null_value;
    char *value; /* NULL when null_value */
    size_t len;
    char *key; /* NULL when there is no .key */
    size_t key_len;
    char *headers_text; /* NULL when there is no .headers.json */
    json_t *headers;
    json_t *expected;
};

/**
 * Every sample of the fixture folder @rel (hx_fixture_path()), sorted by
 * name, into @s (at most @cap: more fails the test, as does a sample
 * without its expectation). Returns how many.
 */
size_t hx_samples_load(const char *rel, struct hx_sample *s, size_t cap);

/** Free what hx_samples_load() read into @s[0 .. @n). */
void hx_samples_free(struct hx_sample *s, size_t n);

/** The member at the dotted @path ("a.b.c") of @v, or NULL. Borrowed. */
json_t *hx_json_at(json_t *v, const char *path);

/**
 * Fail the test unless every "path": value of @want holds in @doc, the
 * @i-th document of sample @name ("<absent>": no such member).
 */
void hx_check_fields(const char *name,
                     size_t i,
                     json_t *doc,
                     const json_t *want);

/* ---- processes -------------------------------------------------------- */

struct hx_proc;

/**
 * Start @argv[0] (looked up in PATH unless it holds a '/') with @argv.
 * @env: extra "K=V" entries, NULL-terminated, appended to the current
 * environment and overriding same-named variables; may be NULL. stdout and
 * stderr go to the files @stdout_path / @stderr_path (created or truncated)
 * or, when NULL, are inherited; stdin is /dev/null. The child stays in our
 * process group, gets SIGKILL when the calling thread dies
 * (PR_SET_PDEATHSIG: a crashed test leaves no redis-server behind, so spawn
 * from the main thread), has the default signal mask and dispositions, and
 * no file descriptors above 2.
 * Returns the process (free with hx_proc_free()) or NULL; a failed exec
 * shows up as exit status 127.
 */
struct hx_proc *hx_proc_spawn(const char *const *argv,
                              const char *const *env,
                              const char *stdout_path,
                              const char *stderr_path);

/**
 * Like hx_proc_spawn() with explicit descriptors for the child's stdin,
 * stdout and stderr (-1: /dev/null for stdin, inherit for the others). The
 * descriptors stay open in the caller, who closes them.
 */
struct hx_proc *hx_proc_spawn_fds(const char *const *argv,
                                  const char *const *env,
                                  int stdin_fd,
                                  int stdout_fd,
                                  int stderr_fd);

/** The child's pid (still valid after it exited, until hx_proc_free()). */
pid_t hx_proc_pid(const struct hx_proc *p);

/** Send @sig to the child unless it was already reaped. Returns 0 or -1. */
int hx_proc_signal(struct hx_proc *p, int sig);

/**
 * Wait up to @timeout_ms (< 0: forever) for the child to exit. Returns 0
 * once it has exited, with its status in *@exit_status when not NULL
 * (WEXITSTATUS, or 128 + signal number when killed); -1 on timeout. Calling
 * it again after an exit returns the same status.
 */
int hx_proc_wait(struct hx_proc *p, int timeout_ms, int *exit_status);

/** Whether the child is still running (reaps it if it has exited). */
bool hx_proc_is_running(struct hx_proc *p);

/** Whether an executable @prog is on PATH (a default PATH when unset). */
bool hx_on_path(const char *prog);

/** SIGKILL the child if it still runs, reap it, free @p. NULL is a no-op. */
void hx_proc_free(struct hx_proc *p);

/* ---- redis ------------------------------------------------------------ */

struct hx_redis;

/**
 * Start redis-server from PATH in a fresh temporary directory:
 *   redis-server --port 0 --unixsocket <dir>/redis.sock --unixsocketperm 700
 *                --save '' --appendonly no --dir <dir> <extra_args...>
 * (extra arguments come last, so they override), logging to <dir>/redis.log,
 * and wait until PING answers (10 s). Returns NULL when redis-server is not
 * on PATH (the test should print why and exit HX_SKIP) or does not start
 * (the log is printed). Free with hx_redis_free().
 */
struct hx_redis *hx_redis_start(const char *const *extra_args);

/** "unix://<dir>/redis.sock", borrowed from @r (HERALD_REDIS_URL format). */
const char *hx_redis_url(const struct hx_redis *r);

/** The socket path, borrowed from @r. */
const char *hx_redis_socket(const struct hx_redis *r);

/** The temporary directory (redis --dir), borrowed from @r. */
const char *hx_redis_dir(const struct hx_redis *r);

/**
 * A new connection (2 s timeout), owned by the caller (redisFree()). NULL
 * when the server does not answer (the reason is printed).
 */
redisContext *hx_redis_connect(const struct hx_redis *r);

/** FLUSHALL; a failure is printed and aborts the test process (it would
 *  make every following check meaningless). */
void hx_redis_flushall(struct hx_redis *r);

/**
 * Stop the server with SIGTERM and wait for it (10 s, then SIGKILL). The
 * directory and the socket path stay reserved for hx_redis_restart_server().
 * Returns 0, or -1 when it had to be killed. Simulates a Redis outage.
 */
int hx_redis_stop_server(struct hx_redis *r);

/**
 * Start the server again with the same arguments, directory and socket,
 * and wait until PING answers (10 s). Returns 0 or -1.
 */
int hx_redis_restart_server(struct hx_redis *r);

/** Kill the server, remove its directory, free @r. NULL is a no-op. */
void hx_redis_free(struct hx_redis *r);

/* ---- broker ----------------------------------------------------------- */

struct hx_broker;

/**
 * Start HX_BIN_DIR/herald-devbroker --control [--topics @topics]
 * [--partitions @partitions] (NULL / 0: the defaults), with stdin and
 * stdout on pipes and stderr in <tmpdir>/devbroker.log, and read the
 * bootstrap address from its first stdout line (10 s). Ignores SIGPIPE in
 * the calling process (a write to a dead broker must fail, not kill the
 * test). Returns NULL on failure, with the broker's log printed. Free with
 * hx_broker_free().
 */
struct hx_broker *hx_broker_start(const char *topics, int partitions);

/**
 * Like hx_broker_start() with any extra devbroker arguments (for example
 * {"--brokers", "3", NULL}); @extra_args may be NULL.
 */
struct hx_broker *hx_broker_start_args(const char *const *extra_args);

/** The bootstrap address ("127.0.0.1:port,..."), borrowed from @b. */
const char *hx_broker_bootstraps(const struct hx_broker *b);

/** Path of the broker's stderr log (JSON lines), borrowed from @b. */
const char *hx_broker_log_path(const struct hx_broker *b);

/** Whether the broker's log contains @needle so far. */
bool hx_broker_log_contains(const struct hx_broker *b, const char *needle);

/** The broker process, borrowed from @b (to signal or wait for it). */
struct hx_proc *hx_broker_proc(struct hx_broker *b);

/**
 * Send one control command (printf-style, no newline) and read the reply
 * (10 s). Returns 0 on "ok"; -1 on "error: ..." (printed), a timeout or a
 * dead broker (its log is printed).
 */
int hx_broker_control(struct hx_broker *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * Close the broker's stdin (it exits at EOF), wait up to 5 s, then
 * SIGKILL; remove its directory and free @b. NULL is a no-op.
 */
void hx_broker_free(struct hx_broker *b);

/**
 * Start hx_bin("herald-<@name>") reading @topic on @b with Redis @r, as
 * the workers' integration tests do: group g-<topic>, Redis prefix
 * "<topic>:", retries to <topic>.retry, dead letters to <topic>.dlq,
 * metrics on a free port (stored in *@port), a 10 s shutdown budget and a
 * short Kafka session; @extra "K=V" settings (NULL-terminated, may be
 * NULL) come first, so they win. stdout and stderr go to @log. NULL on
 * failure (printed).
 */
struct hx_proc *hx_worker_spawn(const char *name,
                                const struct hx_broker *b,
                                const struct hx_redis *r,
                                const char *topic,
                                const char *const *extra,
                                const char *log,
                                int *port);

/**
 * SIGTERM the worker @p and wait up to @timeout_ms for it: its exit status
 * (0 after a clean drain), or -1 when it did not exit in time. @p is not
 * freed.
 */
int hx_worker_stop(struct hx_proc *p, int timeout_ms);

/* ---- kafka ------------------------------------------------------------ */

/*
 * Against the librdkafka 2.0.2 mock cluster (herald-devbroker), a metadata
 * request for an unknown topic creates it with 4 partitions, so "unknown
 * topic" failures below only happen against a real cluster. Errors pushed
 * with "errors <Api> ..." are consumed by the next requests of that API from
 * any client, these helpers included.
 */

/**
 * An idempotent producer for @brokers (linger.ms=5) that counts failed
 * deliveries for hx_producer_flush_free(). Returns NULL on failure
 * (printed). Free only with hx_producer_flush_free().
 */
rd_kafka_t *hx_producer_new(const char *brokers);

/**
 * Like hx_producer_new() with extra librdkafka properties: @props holds
 * name, value pairs, NULL-terminated (e.g. {"compression.type", "lz4",
 * NULL}); may be NULL.
 */
rd_kafka_t *hx_producer_new_with(const char *brokers, const char *const *props);

/**
 * Enqueue one message (key, value and headers are copied) to @topic with
 * the default partitioner; @key and @value may be NULL. @headers holds
 * name, value pairs (values are strings), NULL-terminated; may be NULL.
 * When the local queue is full it polls and retries for up to 30 s.
 * Returns 0, or -1 (printed).
 */
int hx_produce(rd_kafka_t *rk,
               const char *topic,
               const void *key,
               size_t key_len,
               const void *value,
               size_t value_len,
               const char *const *headers);

/**
 * Flush @rk (from hx_producer_new*()) for up to @timeout_ms and keep it.
 * Returns the number of deliveries failed since the last flush, or -1 when
 * messages were still queued at the timeout.
 */
int hx_producer_flush(rd_kafka_t *rk, int timeout_ms);

/**
 * Flush (up to @timeout_ms), then destroy @rk, which must come from
 * hx_producer_new*(). Returns the number of failed deliveries, or -1 when
 * messages were still queued at the timeout.
 */
int hx_producer_flush_free(rd_kafka_t *rk, int timeout_ms);

/** Called for each consumed message; return 0 to go on, non-zero to stop.
 *  @rkm is borrowed for the duration of the call. */
typedef int hx_msg_fn(void *opaque, const rd_kafka_message_t *rkm);

/**
 * Read @topic from the beginning with a throwaway assign()-only consumer
 * (no group join, no commits): every partition from its low watermark up to
 * the high watermark measured at the start. Stops when all partitions
 * reached it, when @fn returns non-zero, after @idle_ms without a message,
 * or at @timeout_ms. @fn may be NULL (just count). Returns the number of
 * messages seen, or -1 when the topic is unknown or the cluster does not
 * answer (printed).
 */
int hx_consume_all(const char *brokers,
                   const char *topic,
                   int idle_ms,
                   int timeout_ms,
                   hx_msg_fn *fn,
                   void *opaque);

/**
 * Messages currently held for @topic: the sum over its partitions of high
 * minus low watermark. -1 on failure (printed).
 */
int64_t hx_topic_count(const char *brokers, const char *topic);

/** Partition count of @topic from the cluster's metadata, -1 if unknown. */
int hx_topic_partitions(const char *brokers, const char *topic);

/* ---- http and network ------------------------------------------------- */

/**
 * GET @url with libcurl (5 s timeout). Returns 0 once any HTTP response
 * arrived, with its status in *@status and, when @body is not NULL, the
 * NUL-terminated body in *@body (malloc'd, caller frees); -1 on a transport
 * failure (printed; *@body is set to NULL).
 */
int hx_http_get(const char *url, long *status, char **body);

/** Like hx_http_get() without a body, and silent on a transport failure
 *  (for waiting until a server listens). */
int hx_http_probe(const char *url, long *status);

/** GET http://127.0.0.1:@port/metrics: the body (malloc'd, caller frees),
 *  or NULL unless the answer was 200. */
char *hx_metrics_get(int port);

/** The sum of the values of every series line of the Prometheus text
 *  @text that starts with @prefix (e.g. "herald_events_processed_total{");
 *  -1 when @text is NULL. */
double hx_metric_sum(const char *text, const char *prefix);

/** hx_metric_sum() over a fresh GET of the worker's /metrics on @port. */
double hx_metric(int port, const char *prefix);

/** A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int hx_free_port(void);

/* ---- waiting ---------------------------------------------------------- */

/**
 * Call @pred(@arg) now and then every 50 ms until it returns true (0) or
 * @timeout_ms passed (-1).
 */
int hx_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms);

/** Milliseconds on a monotonic clock, for measuring. */
int64_t hx_now_ms(void);

/** Sleep @ms milliseconds. */
void hx_sleep_ms(int ms);

#endif
