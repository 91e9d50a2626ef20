/* herald-unread: message and read events in, exact unread counts out. */
#include "unread.h"

int main(int argc, char **argv)
{
    static const struct hr_worker_def def = {
        .name = "unread",
        .summary = "Keeps exact per-user, per-conversation unread counts "
                   "and badge totals in Redis.",
        .topics = "herald.messages",
        .conf = unread_conf,
        .uses_redis = true,
        .validate = unread_validate,
        .init = unread_init,
        .submit = unread_submit,
        .handle = unread_handle,
        .fini = unread_fini,
    };

    return hr_worker_main(&def, argc, argv);
}
