/* Polling with a deadline, clocks. */
#include <errno.h>
#include <time.h>

#include "harness.h"
#include "hr_banned.h"

#define HX_WAIT_POLL_MS 50

int64_t hx_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hx_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

int hx_wait_until(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    int64_t deadline = hx_now_ms() + timeout_ms;

    for (;;) {
        if (pred(arg))
            return 0;
        if (hx_now_ms() >= deadline)
            return -1;
        hx_sleep_ms(HX_WAIT_POLL_MS);
    }
}
