/* herald-guard: retry records in, scheduled redeliveries and dead letters
 * out. */
#include <string.h>

#include "guard.h"

int main(int argc, char **argv)
{
    /* Its batches are cheap to handle but each costs a Redis round trip:
     * larger ones (bench-guard.sh: 5,000 gave 49-53k records/s at 49 MB,
     * 7,000 52-58k at 54-56 MB, 8,000 59-63k at 60-68 MB). */
    static const char *const defaults[] = {"HERALD_BATCH_MAX", "7000", NULL};
    static const struct hr_worker_def def = {
        .name = "guard",
        .summary = "Schedules retries with backoff and a per-destination "
                   "budget, redelivers them to herald.redeliver.<worker>, "
                   "and dead-letters what exceeds attempts or age.",
        .topics = "herald.retry",
        .conf = guard_conf,
        .uses_redis = true,
        .validate = guard_validate,
        .init = guard_init,
        .submit = guard_submit,
        .handle = guard_handle,
        .tick = guard_tick,
        .fini = guard_fini,
        .defaults = defaults,
    };

    if (argc > 1 && !strcmp(argv[1], "redrive"))
        return guard_redrive_main(argc - 1, argv + 1);
    return hr_worker_main(&def, argc, argv);
}
