/* herald-push: device registry and deliveries to APNs, FCM and Web Push. */
#include "push.h"

int main(int argc, char **argv)
{
    static const struct hr_worker_def def = {
        .name = "push",
        .summary = "Keeps the device registry and delivers push.requested "
                   "to APNs, FCM HTTP v1 and Web Push, removing dead tokens.",
        .topics = "herald.push,herald.devices",
        .conf = push_conf,
        .cloudevents = true,
        .uses_redis = true,
        /* A push carries a request body, headers and a device each: 1,000
         * keeps a batch's memory small while still filling the HTTP/2
         * streams (HERALD_PUSH_CONCURRENCY at a time) many times over. */
        .batch_max = 1000,
        .validate = push_validate,
        .init = push_init,
        .handle = push_handle,
        .fini = push_fini,
    };

    return hr_worker_main(&def, argc, argv);
}
