/* herald-guard: retry records in, scheduled redeliveries and dead letters
 * out. */
#include <string.h>

#include "guard.h"

int main(int argc, char **argv)
{
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
        .stop = guard_stop,
        .fini = guard_fini,
    };

    if (argc > 1 && !strcmp(argv[1], "redrive"))
        return guard_redrive_main(argc - 1, argv + 1);
    return hr_worker_main(&def, argc, argv);
}
