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
        .validate = push_validate,
        .init = push_init,
        .handle = push_handle,
        .fini = push_fini,
    };

    return hr_worker_main(&def, argc, argv);
}
