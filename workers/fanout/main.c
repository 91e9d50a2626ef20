/* herald-fanout: stream-trigger fan-out by declarative rules. */
#include "fanout.h"

int main(int argc, char **argv)
{
    static const struct hr_worker_def def = {
        .name = "fanout",
        .summary = "Normalizes DynamoDB Streams, Debezium and CloudEvents "
                   "change records and routes them by rules to topics and "
                   "webhooks.",
        .topics = "herald.changes",
        .conf = fanout_conf,
        .uses_redis = true,
        .validate = fanout_validate,
        .init = fanout_init,
        .handle = fanout_handle,
        .fini = fanout_fini,
    };

    return hr_worker_main(&def, argc, argv);
}
